"""The operator's own kmock harness and schema checks, reused (plain modules of tests/operator).

Why reuse instead of a copy: `kmock_cluster.VersionedEmulator` patches two gaps of kmock 0.8 that
kopf depends on (resourceVersions, list-then-watch continuity); a second copy would drift. Those test
folders are not packages, so their folder goes on sys.path, as pytest's rootdir-relative imports do
when it collects tests/operator.
"""

from __future__ import annotations

import sys
from pathlib import Path

_OPERATOR_TESTS = Path(__file__).resolve().parents[1] / "tests" / "operator"
if str(_OPERATOR_TESTS) not in sys.path:
    sys.path.insert(0, str(_OPERATOR_TESTS))

import kmock_cluster  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
import plan_helpers  # type: ignore[import-not-found, unused-ignore]  # noqa: E402

__all__ = ["kmock_cluster", "plan_helpers"]
