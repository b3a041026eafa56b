"""The runner's pure decisions: device slots, trial command and environment, the output folder, ETA.

These are the choices that are cheap to get wrong and expensive to notice (two trials on one GPU,
sixteen OpenMP threads per trial on a 16-core box, a run written over someone's folder), so each
is pinned by hand-computed cases.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubevision.api.errors import KubevisionError
from kubevision.api.loading import parse_manifest
from kubevision.api.models import AutoMLImageJob
from kubevision.local.devices import GpuInfo, Slot, plan_slots
from kubevision.local.launch import trial_command, trial_env, worker_pids
from kubevision.local.layout import RunLayout
from kubevision.local.outdir import (
    check_space_and_writable,
    decide_output_dir,
    default_output_dir,
    prepare_output_dir,
    write_marker,
)
from kubevision.local.progress import estimate_remaining

GiB = 2**30


def _gpus(n: int, memory: int = 16 * GiB) -> list[GpuInfo]:
    return [GpuInfo(id=str(i), memory_bytes=memory) for i in range(n)]


def test_cpu_slots_split_the_cores_between_concurrent_trials() -> None:
    plan = plan_slots(concurrency=3, gpus_per_trial=0, gpus=[], cores=16)
    assert [s.gpus for s in plan.slots] == [(), (), ()]
    assert [s.threads for s in plan.slots] == [5, 5, 5]
    assert plan.slots[0].nproc == 1 and plan.slots[0].device == "cpu"
    assert plan.device_memory_bytes is None and plan.notes == ()


def test_more_trials_than_cores_still_get_one_thread_each() -> None:
    plan = plan_slots(concurrency=4, gpus_per_trial=0, gpus=[], cores=2)
    assert [s.threads for s in plan.slots] == [1, 1, 1, 1]


def test_gpus_are_partitioned_never_shared() -> None:
    plan = plan_slots(concurrency=2, gpus_per_trial=2, gpus=_gpus(4), cores=32)
    assert [s.gpus for s in plan.slots] == [("0", "1"), ("2", "3")]
    assert [s.nproc for s in plan.slots] == [2, 2]
    assert plan.slots[0].threads == 8  # 32 cores / (2 trials x 2 processes)
    assert plan.device_memory_bytes == 16 * GiB


def test_concurrency_is_capped_by_the_gpus_with_a_note() -> None:
    plan = plan_slots(concurrency=4, gpus_per_trial=1, gpus=_gpus(2), cores=8)
    assert [s.gpus for s in plan.slots] == [("0",), ("1",)]
    assert any("running 2 at a time" in n for n in plan.notes)


def test_a_trial_takes_the_gpus_there_are_and_the_smallest_sets_the_memory() -> None:
    gpus = [GpuInfo("GPU-a", 80 * GiB), GpuInfo("GPU-b", 24 * GiB)]
    plan = plan_slots(concurrency=1, gpus_per_trial=4, gpus=gpus, cores=8)
    assert plan.slots[0].gpus == ("GPU-a", "GPU-b")
    assert plan.device_memory_bytes == 24 * GiB
    assert any("each trial uses 2" in n for n in plan.notes)


def test_no_gpu_found_trains_on_the_cpu_and_says_so() -> None:
    plan = plan_slots(concurrency=2, gpus_per_trial=1, gpus=[], cores=4)
    assert [s.gpus for s in plan.slots] == [(), ()] and plan.slots[0].threads == 2
    assert any("no GPU found" in n for n in plan.notes)


def test_trial_command_is_torchrun_of_the_trial_program() -> None:
    command = trial_command("/py", Path("/run/trials/3/trial.json"), 2)
    assert command == ["/py", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                       "-m", "kubevision.cli", "train", "--trial-config", "/run/trials/3/trial.json"]


def test_trial_env_sets_devices_and_threads_unless_threads_are_given() -> None:
    cpu = trial_env({"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1"}, Slot(0, (), 4))
    assert cpu["CUDA_VISIBLE_DEVICES"] == "" and cpu["OMP_NUM_THREADS"] == "4" and cpu["PATH"] == "/bin"
    assert cpu["PYTHONUNBUFFERED"] == "1"
    gpu = trial_env({"OMP_NUM_THREADS": "1"}, Slot(1, ("2", "3"), 6))
    assert gpu["CUDA_VISIBLE_DEVICES"] == "2,3" and gpu["OMP_NUM_THREADS"] == "1"


def test_worker_pids_finds_children_of_a_real_process() -> None:
    import subprocess
    import sys

    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys, time; c = subprocess.Popen(['sleep', '30']); "
                               "print(c.pid, flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert worker_pids(parent.pid) == [child]
    finally:
        parent.kill()
        parent.wait()
        import os
        import signal

        os.kill(child, signal.SIGKILL)
    assert worker_pids(2**22 + 7) == []


def _job(**spec: object) -> AutoMLImageJob:
    manifest = {"apiVersion": "kubevision.io/v1alpha1", "kind": "AutoMLImageJob", "metadata": {"name": "digits"},
                "spec": {"task": "image_classification", "trainingData": {"path": "d/train.jsonl"}, **spec}}
    job = parse_manifest(manifest)
    assert isinstance(job, AutoMLImageJob)
    return job


def test_default_output_is_runs_name_under_cwd_or_the_jobs_local_output_uri(tmp_path: Path) -> None:
    job_file = tmp_path / "jobs" / "job.yaml"
    assert default_output_dir(_job(), job_file, tmp_path / "cwd") == tmp_path / "cwd" / "runs" / "digits"
    relative = _job(output={"uri": "out/here"})
    assert default_output_dir(relative, job_file, tmp_path) == (tmp_path / "jobs" / "out" / "here").resolve()
    assert default_output_dir(_job(output={"uri": "file:///abs/x"}), job_file, tmp_path) == Path("/abs/x")
    with pytest.raises(KubevisionError, match="remote location"):
        default_output_dir(_job(output={"uri": "s3://bucket/runs"}), job_file, tmp_path)


def test_output_folder_rules() -> None:
    root = Path("/runs/digits")
    assert decide_output_dir(root, [], None, job_name="digits", resume=False).resume is False
    fresh = decide_output_dir(root, [], None, job_name="digits", resume=True)
    assert fresh.resume is False and "nothing to resume" in (fresh.note or "")
    with pytest.raises(KubevisionError, match="not empty and holds no kubevision run") as err:
        decide_output_dir(root, ["notes.txt", "data"], None, job_name="digits", resume=True)
    assert "data, notes.txt" in str(err.value)
    marker = {"kind": "kubevision-run", "job": "digits", "phase": "succeeded"}
    with pytest.raises(KubevisionError, match=r"earlier run of 'digits'.*succeeded") as err:
        decide_output_dir(root, ["run.json"], marker, job_name="digits", resume=False)
    assert "--resume" in str(err.value)
    with pytest.raises(KubevisionError, match="run of job 'digits', not of 'other'"):
        decide_output_dir(root, ["run.json"], marker, job_name="other", resume=True)
    assert decide_output_dir(root, ["run.json"], marker, job_name="digits", resume=True).resume is True


def test_prepare_output_dir_reads_the_real_marker_and_probes(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run")
    assert prepare_output_dir(layout, job_name="digits", resume=False).resume is False
    assert list(layout.root.iterdir()) == []  # the probe leaves nothing behind
    write_marker(layout, {"job": "digits", "phase": "running"})
    assert prepare_output_dir(layout, job_name="digits", resume=True).resume is True
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(KubevisionError, match="is a file"):
        prepare_output_dir(RunLayout(blocker), job_name="digits", resume=False)


def test_unwritable_output_folder_is_refused_before_anything_runs(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(KubevisionError, match=r"(?s)cannot write to the output folder .*no trial was started"):
        check_space_and_writable(blocker / "run")
    with pytest.raises(KubevisionError, match="MiB free"):
        check_space_and_writable(tmp_path / "run", min_free_bytes=2**62)


def test_eta_shares_the_remaining_work_and_respects_the_timeout() -> None:
    assert estimate_remaining(durations=[], running_elapsed=[5.0], to_start=3, concurrency=2, time_left=None) is None
    # average 60 s; running trials at 20 s and 50 s need 40 + 10; three more need 180; two slots.
    eta = estimate_remaining(durations=[50.0, 70.0], running_elapsed=[20.0, 50.0], to_start=3, concurrency=2,
                             time_left=None)
    assert eta == pytest.approx(115.0)
    assert estimate_remaining(durations=[60.0], running_elapsed=[0.0], to_start=9, concurrency=1,
                              time_left=30.0) == 30.0
    assert estimate_remaining(durations=[], running_elapsed=[], to_start=0, concurrency=1, time_left=None) == 0.0
