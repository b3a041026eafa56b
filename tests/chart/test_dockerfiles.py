"""Structure of Dockerfile.operator and Dockerfile.trainer, checked without a Docker engine.

CI has no Docker, so the images are not built here; these checks hold what a build would not tell
us anyway: bases pinned to an exact version (never `latest`), multi-stage builds, a numeric non-root
USER that matches the chart's runAsUser, exec-form entrypoints, torch kept out of the operator and
pinned in the trainer to pyproject's versions, and a .dockerignore that lets in what COPY needs.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from chart_helm import CHART, REPO

EXACT_TAG = re.compile(r"^[\w.\-/]+:\d+\.\d+\.\d+[\w.\-]*(@sha256:[a-f0-9]{64})?$")
DIGEST = re.compile(r"^[\w.\-/:]+@sha256:[a-f0-9]{64}$")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def text_of(self, keyword: str) -> str:
        return "\n".join(args for stage in self.stages for args in stage.all(keyword))


def parse(path: Path) -> Dockerfile:
    """Instructions with line continuations joined; ARGs before the first FROM substituted into FROM."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, f"{path.name}: dangling line continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m.group(1) or m.group(2)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        elif not stages:
            assert keyword == "ARG", f"{path.name}: only ARG may precede FROM, got {keyword}"
            arg_name, _, default = rest.partition("=")
            global_args[arg_name] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(args=global_args, stages=stages)


DOCKERFILES = {name: parse(REPO / name) for name in ("Dockerfile.operator", "Dockerfile.trainer")}


@pytest.fixture(params=sorted(DOCKERFILES))
def dockerfile(request: pytest.FixtureRequest) -> Dockerfile:
    return DOCKERFILES[str(request.param)]


def test_multi_stage_on_pinned_bases(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2
    builder, runtime = dockerfile.stages[0], dockerfile.final
    assert builder.name == "builder"
    for stage in dockerfile.stages:
        assert ":latest" not in stage.base and "latest" not in stage.base.split(":")[-1]
        assert EXACT_TAG.match(stage.base) or DIGEST.match(stage.base), f"unpinned base image {stage.base}"
    assert runtime.base.startswith("python:3.11.") and "slim" in runtime.base
    # The runtime copies the builder's virtualenv: both must be the same Python build.
    assert builder.base == runtime.base
    assert runtime.all("COPY") == ["--from=builder /opt/kubevision /opt/kubevision"]


def test_runtime_runs_as_the_chart_non_root_uid(dockerfile: Dockerfile) -> None:
    users = dockerfile.final.all("USER")
    assert users == ["10001:10001"], "the final stage must end as a numeric non-root user"
    assert [kw for kw, _ in dockerfile.final.instructions if kw in {"USER", "RUN"}][-1] == "USER"
    pod = yaml.safe_load((CHART / "values.yaml").read_text())["podSecurityContext"]
    assert f"{pod['runAsUser']}:{pod['runAsGroup']}" == users[0]


def test_entrypoints_are_exec_form(dockerfile: Dockerfile) -> None:
    (entrypoint,) = dockerfile.final.all("ENTRYPOINT")
    parsed = json.loads(entrypoint)
    assert isinstance(parsed, list) and parsed[0] == "kubevision"


def test_operator_image_is_the_operator_extra_without_torch() -> None:
    operator = DOCKERFILES["Dockerfile.operator"]
    assert json.loads(operator.final.all("ENTRYPOINT")[0]) == ["kubevision", "operator"]
    run = operator.text_of("RUN")
    assert "[operator]" in run
    assert not re.search(r"\b(trainer|local|serving)\b", run.replace("import torch", ""))
    assert "torch" not in run.replace('! /opt/kubevision/bin/python -c "import torch"', "")
    # The chart's container ports are the ones the image documents.
    assert set(operator.final.all("EXPOSE")[0].split()) == {"8080", "8081", "8082", "9443"}


def test_trainer_pins_torch_to_the_project_versions() -> None:
    trainer = DOCKERFILES["Dockerfile.trainer"]
    run = trainer.text_of("RUN")
    pins = dict(re.findall(r"\b(torch|torchvision)==([\d.]+)", run))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["trainer"]
    wanted = dict(re.findall(r"^(torch|torchvision)==([\d.]+)$", "\n".join(project), flags=re.M))
    assert pins == wanted == {"torch": "2.14.1", "torchvision": "0.29.1"}
    extras = trainer.args["KUBEVISION_EXTRAS"].split(",")
    assert {"trainer", "local", "object-stores"} <= set(extras)
    assert set(extras) <= set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert "[${KUBEVISION_EXTRAS}]" in run
    assert trainer.args["TORCH_VARIANT"] == "cpu"
    assert "https://download.pytorch.org/whl/${TORCH_VARIANT}" in run


def _dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a directory match covers its contents."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        candidates = [path] + ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)]
        if any(fnmatch.fnmatch(candidate, body) or fnmatch.fnmatch(candidate, body.replace("**/", ""))
               for candidate in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_lets_in_exactly_the_build_inputs() -> None:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    copied: set[str] = set()
    for dockerfile in DOCKERFILES.values():
        for stage in dockerfile.stages:
            for args in stage.all("COPY"):
                words = [w for w in shlex.split(args) if not w.startswith("--")]
                if "--from=" not in args:
                    copied |= {w.rstrip("/") for w in words[:-1]}
    assert copied == {"pyproject.toml", "README.md", "src"}
    for path in ("pyproject.toml", "README.md", "src/kubevision/cli.py", "src/kubevision/py.typed"):
        assert not _dockerignore_excludes(path, patterns), f"{path} must reach the build context"
    for path in (".venv/bin/python", ".git/HEAD", ".tools/bin/helm", "data/digits/train.jsonl", "tests/chart/x.py",
                 "src/kubevision/__pycache__/cli.cpython-311.pyc", "runs/t0/summary.json"):
        assert _dockerignore_excludes(path, patterns), f"{path} must stay out of the build context"
