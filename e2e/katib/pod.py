"""One trial pod, run as a local process: what a kubelet, the training operator and Katib's collector do.

Why a plan and a run: `plan_pod` is pure (the job manifest, ConfigMaps and Secrets in; argv, env,
files and folders out), so the mapping from a pod spec to a local process is tested on its own;
`run_pod` only writes the files and runs the plan.

What is emulated, and how:
- volumes are folders: a ConfigMap or Secret volume is a folder of its keys, a PersistentVolumeClaim
  is the host folder the caller gives for that claim (`LocalCluster.claims`), an emptyDir a fresh
  folder; /dev/shm stays the host's. Container paths in the command, in env values and in the
  ConfigMap files are rewritten to those folders (`PathMap`), which is what a mount does for a path;
- env: the container's (`value`, and `valueFrom` a Secret, a ConfigMap or the pod's name or
  namespace), the training operator's (PYTHONUNBUFFERED, MASTER_ADDR/PORT, WORLD_SIZE, RANK and the
  PET_* torchrun defaults; the master address is 127.0.0.1 instead of the `<job>-master-0` Service),
  Katib's KATIB_TRIAL_NAME, then `LocalCluster.env` (thread limits on a shared machine);
- in-cluster URLs in the command (the operator's decision service) are rewritten to reachable ones
  (`LocalCluster.services`), as cluster DNS would resolve them;
- Katib's StdOut collector wraps the primary container: command and args joined with spaces into
  `sh -c "<cmd> 1>/var/log/katib/metrics.log 2>&1 && echo completed > /var/log/katib/$$.pid"`, so
  an argument with a space or a quote breaks exactly as it would in the cluster, and stdout and
  stderr both land in the metrics file the collector parses;
- executables come from `LocalCluster.bin_dir` first on PATH (the virtualenv of the test run stands
  in for the trainer image).
Not emulated: Worker replicas (a multi-node trial needs a real cluster), resource limits, GPUs,
nodeSelector/tolerations, securityContext, image pulls.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["KATIB_LOG_DIR", "LocalCluster", "PathMap", "PodPlan", "PodResult", "plan_pod", "run_pod"]

KATIB_LOG_DIR = "/var/log/katib"
METRICS_FILE = "metrics.log"


@dataclass(frozen=True)
class LocalCluster:
    """What the player maps cluster resources to on this machine."""

    claims: Mapping[str, Path]
    """PersistentVolumeClaim name -> host folder holding its files."""
    services: Mapping[str, str] = field(default_factory=dict)
    """In-cluster URL prefix (http://svc.ns.svc:port) -> a URL reachable from here."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Added to every container's environment last (e.g. OMP_NUM_THREADS=1 on a shared machine)."""
    extra_args: tuple[str, ...] = ()
    """Appended to the primary container's command: a documented deviation for test budgets only."""
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)
    """Put first on PATH: where `kubevision` and `torchrun` of the image are found."""


class PathMap:
    """Container path -> host folder, applied to text the way a mount applies to paths."""

    def __init__(self, mounts: Mapping[str, Path]) -> None:
        self.mounts = {k.rstrip("/") or "/": Path(v) for k, v in mounts.items()}
        ordered = sorted(self.mounts, key=len, reverse=True)
        self._pattern = re.compile(
            "|".join(rf"(?<![\w./-]){re.escape(m)}(?![\w.-])" for m in ordered)) if ordered else None

    def rewrite(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: str(self.mounts[m.group(0)]), text)

    def host(self, container_path: str) -> Path | None:
        """The host path of a container path under one of the mounts (None when none covers it)."""
        for mount in sorted(self.mounts, key=len, reverse=True):
            if container_path == mount or container_path.startswith(mount + "/"):
                return self.mounts[mount] / container_path[len(mount):].lstrip("/")
        return None


@dataclass(frozen=True)
class PodPlan:
    """Everything needed to start the primary container of a trial job locally."""

    name: str
    argv: list[str]
    """The container's command and args after path and service rewriting (plus extra_args)."""
    script: str
    """What runs: Katib's `sh -c` wrapping of `argv`."""
    env: dict[str, str]
    files: dict[Path, str]
    """Files to write before the start (ConfigMap and Secret keys)."""
    folders: list[Path]
    """Folders to create before the start (emptyDirs, volume roots, Katib's log folder)."""
    metrics_file: Path
    workdir: Path
    path_map: PathMap
    deadline_s: float | None


@dataclass(frozen=True)
class PodResult:
    exit_code: int
    deadline_exceeded: bool
    log: str
    """What the collector read: the container's stdout and stderr."""


def _decoded(secret: Mapping[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return data


def _volume_folders(pod: Mapping[str, Any], container: Mapping[str, Any], scratch: Path, local: LocalCluster,
                    config_maps: Mapping[str, Mapping[str, Any]], secrets: Mapping[str, Mapping[str, Any]]
                    ) -> tuple[dict[str, Path], dict[Path, str], list[Path]]:
    volumes = {str(v["name"]): v for v in pod.get("volumes") or []}
    mounts: dict[str, Path] = {KATIB_LOG_DIR: scratch / "katib"}
    files: dict[Path, str] = {}
    folders = [scratch / "katib"]
    for mount in container.get("volumeMounts") or []:
        path = str(mount["mountPath"])
        if mount.get("subPath"):
            raise ValueError(f"volumeMount {mount['name']}: subPath is not emulated")
        volume = volumes.get(str(mount["name"]))
        if volume is None:
            raise ValueError(f"volumeMount {mount['name']!r} names no volume of the pod")
        if path == "/dev/shm":
            continue
        folder = scratch / "volumes" / str(volume["name"])
        if "persistentVolumeClaim" in volume:
            claim = str(volume["persistentVolumeClaim"]["claimName"])
            if claim not in local.claims:
                raise ValueError(f"PersistentVolumeClaim {claim!r} is not given to the player (LocalCluster.claims)")
            mounts[path] = Path(local.claims[claim])
            continue
        if "configMap" in volume or "secret" in volume:
            source = volume.get("configMap") or volume.get("secret") or {}
            if "configMap" in volume:
                store, name = config_maps.get(str(source.get("name"))), str(source.get("name"))
                data = dict((store or {}).get("data") or {})
            else:
                store, name = secrets.get(str(source.get("secretName"))), str(source.get("secretName"))
                data = _decoded(store or {})
            if store is None and not source.get("optional"):
                raise ValueError(f"volume {volume['name']!r}: {name!r} does not exist")
            items = source.get("items")
            keys = {str(i["key"]): str(i["path"]) for i in items} if items else {k: k for k in data}
            for key, relative in keys.items():
                files[folder / relative] = str(data.get(key, ""))
        elif "emptyDir" not in volume:
            raise ValueError(f"volume {volume['name']!r}: only PVC, ConfigMap, Secret and emptyDir are emulated")
        mounts[path] = folder
        folders.append(folder)
    return mounts, files, folders


def _env_value(item: Mapping[str, Any], pod_name: str, namespace: str, config_maps: Mapping[str, Mapping[str, Any]],
               secrets: Mapping[str, Mapping[str, Any]]) -> str:
    if "value" in item:
        return str(item["value"])
    source = item.get("valueFrom") or {}
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        secret = secrets.get(str(ref["name"]))
        if secret is None:
            raise ValueError(f"env {item['name']}: Secret {ref['name']!r} does not exist")
        return _decoded(secret)[str(ref["key"])]
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        return str(((config_maps.get(str(ref["name"])) or {}).get("data") or {})[str(ref["key"])])
    if "fieldRef" in source:
        path = source["fieldRef"]["fieldPath"]
        return {"metadata.name": pod_name, "metadata.namespace": namespace}[path]
    raise ValueError(f"env {item.get('name')}: only value, secretKeyRef, configMapKeyRef and fieldRef are emulated")


def plan_pod(job: Mapping[str, Any], trial_name: str, *, local: LocalCluster, scratch: Path, master_port: int,
             config_maps: Mapping[str, Mapping[str, Any]], secrets: Mapping[str, Mapping[str, Any]],
             primary_container: str) -> PodPlan:
    """The Master replica of a PyTorchJob (`job` = the Trial's runSpec) as a local process (pure)."""
    spec = job.get("spec") or {}
    replicas = spec.get("pytorchReplicaSpecs") or {}
    if set(replicas) - {"Master"}:
        raise ValueError(f"the Katib player runs single-node trials; {sorted(replicas)} replicas need a cluster")
    meta = job.get("metadata") or {}
    namespace = str(meta.get("namespace"))
    pod_name = f"{meta.get('name')}-master-0"
    pod = (replicas["Master"].get("template") or {}).get("spec") or {}
    containers = [c for c in pod.get("containers") or [] if c.get("name") == primary_container]
    if not containers:
        raise ValueError(f"the pod has no container named {primary_container!r}")
    container = containers[0]
    mounts, files, folders = _volume_folders(pod, container, scratch, local, config_maps, secrets)
    path_map = PathMap(mounts)
    files = {path: path_map.rewrite(text) for path, text in files.items()}

    def rewrite(word: str) -> str:
        word = path_map.rewrite(word)
        for inside, outside in local.services.items():
            word = word.replace(inside, outside)
        return word

    argv = [rewrite(str(w)) for w in [*(container.get("command") or []), *(container.get("args") or [])]]
    argv += list(local.extra_args)
    if not argv:
        raise ValueError("the container has no command: Katib would need the image's ENTRYPOINT from a registry")
    metrics_file = mounts[KATIB_LOG_DIR] / METRICS_FILE
    script = f"{' '.join(argv)} 1>{metrics_file} 2>&1 && echo completed > {mounts[KATIB_LOG_DIR]}/$$.pid"
    nproc = str(spec.get("nprocPerNode") or "")
    env = dict(os.environ)
    env["PATH"] = f"{local.bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.update({
        "PYTHONUNBUFFERED": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(master_port),
        "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(master_port), "RANK": "0", "PET_NODE_RANK": "0",
        "WORLD_SIZE": str(int(nproc) if nproc.isdigit() else 1), "PET_NNODES": "1",
        "KATIB_TRIAL_NAME": trial_name,
    })
    if nproc:
        env["PET_NPROC_PER_NODE"] = nproc
    for item in container.get("env") or []:
        env[str(item["name"])] = rewrite(_env_value(item, pod_name, namespace, config_maps, secrets))
    env.update(local.env)
    deadline = (spec.get("runPolicy") or {}).get("activeDeadlineSeconds")
    return PodPlan(pod_name, argv, script, env, files, folders, metrics_file, scratch / "workdir", path_map,
                   float(deadline) if deadline else None)


async def run_pod(plan: PodPlan, *, deadline_s: float | None = None) -> PodResult:
    """Start the plan in its own process group, wait (killing it at the deadline), return what it printed."""
    for folder in [*plan.folders, plan.workdir]:
        folder.mkdir(parents=True, exist_ok=True)
    for path, text in plan.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    plan.metrics_file.unlink(missing_ok=True)
    process = await asyncio.create_subprocess_exec(
        "sh", "-c", plan.script, env=plan.env, cwd=plan.workdir, start_new_session=True,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    exceeded = False
    try:
        await asyncio.wait_for(process.wait(), timeout=deadline_s or plan.deadline_s)
    except TimeoutError:
        exceeded = True
        _kill(process.pid)
        await process.wait()
    except BaseException:  # cancelled: the pod is deleted with its job
        _kill(process.pid)
        with contextlib.suppress(BaseException):
            await asyncio.shield(process.wait())
        raise
    log = plan.metrics_file.read_text(encoding="utf-8", errors="replace") if plan.metrics_file.exists() else ""
    return PodResult(int(process.returncode if process.returncode is not None else -1), exceeded, log)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
