"""Trainer tests: real timm/torch models on CPU, real torchvision transforms, real sklearn.

Seams: nothing is faked except the network. Every test runs with socket connections refused
(`no_network`, autouse), so a model hub download anywhere in the trainer fails the test instead of
silently succeeding on a machine that happens to be online. Models are built with 3 classes and fed
2x3x32x32 batches; the big ones (resnet101/152, vitb, vitl, resnest101) are only built on the meta
device, which allocates no memory. torch is limited to one thread: the CI machine is shared.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import torch

torch.set_num_threads(1)


class NetworkUsed(AssertionError):
    """Raised when code under test opens a network connection."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Refuse every outgoing connection; yields the list of attempted addresses."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise NetworkUsed(f"network access to {address!r} in a trainer test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield attempts
