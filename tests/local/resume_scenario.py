"""The resume + bandit scenario's first run, started early and killed by a watcher thread.

Why early: the scenario is sequential by nature (the good trial must finish before the bad one is
judged), so it keeps one core busy for most of a minute while the other idles. The conftest starts
this first run at the beginning of the session (only when the resume tests are selected), the
cheap tests run on the other core meanwhile, and the resume tests pick up where it stands. Why a
thread: the runner must be SIGKILLed the moment the second trial is launched, whatever the test
process is doing at that moment.

The job samples learningRate from a choice of a good value and 1e-9 (a trial that cannot learn),
seeded so that the good trial runs first; one trial at a time. The data is the digits 0 and 1 (288
training images) at 8 px (the digits' native size): resnet18 tells them apart after two epochs
(accuracy > 0.9), while the 1e-9 trial does not learn; BatchNorm statistics still move, so its
accuracy wanders with the random init (0.3-0.9 seen on 0-vs-1 digits), hence a fixed randomSeed
(0: the bad trial reads 0.65 at report 2, the good one 0.93) and slack factor 0.05: the cut is at
0.93 / 1.05 = 0.89. The policy starts at the second report (delayEvaluation 2): the
first validation of a good trial is not always far from chance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from runner_support import ENV, KUBEVISION, write_job

from kubevision.api.loading import load_job
from kubevision.sweep.study import Sweep

GOOD, BAD = 0.01, 1e-9
SPACE = [{"modelName": {"type": "choice", "values": ["resnet18"]},
          "learningRate": {"type": "choice", "values": [GOOD, BAD]}}]
BANDIT = {"type": "bandit", "slackFactor": 0.05, "evaluationInterval": 1, "delayEvaluation": 2}
PIXELS = {"trainingCropSize": 8, "validationResizeSize": 8, "validationCropSize": 8}


def _binary(digits: Path, source: str, target: str) -> str:
    lines = [line for line in (digits / f"{source}.jsonl").read_text().splitlines()
             if json.loads(line)["label"] in ("0", "1")]
    (digits / f"{target}.jsonl").write_text("\n".join(lines) + "\n")
    return target


def seed_with_good_first(job: Path, tmp: Path) -> int:
    """A seed whose first two random draws are [GOOD, BAD], found with the real sweep."""
    spec = load_job(job)
    for seed in range(100):
        with Sweep.open(spec, tmp / f"probe-{seed}.db", seed=seed) as sweep:
            first, second = sweep.ask(), sweep.ask()
        assert first is not None and second is not None
        if (first.params["learningRate"], second.params["learningRate"]) == (GOOD, BAD):
            return seed
    raise AssertionError("no seed draws the good learning rate first")


class FirstRun:
    """`kubevision run` in a subprocess, SIGKILLed by a thread as soon as trial 1 is launched.

    Everything (writing the job, finding the seed, starting and watching the runner) happens in a
    background thread, so starting the scenario costs the session nothing.
    """

    def __init__(self, digits: Path, tmp: Path) -> None:
        self.out = tmp / "out"
        self.job = tmp / "job.yaml"
        self.seed = -1
        self.process: subprocess.Popen[str] | None = None
        self.killed = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(digits, tmp), name="resume-first-run", daemon=True)
        self._thread.start()

    def _run(self, digits: Path, tmp: Path) -> None:
        try:
            write_job(self.job, digits, name="bandit", train=_binary(digits, "train", "bin_train"),
                      val=_binary(digits, "val", "bin_val"),
                      params={"numberOfEpochs": 3, "optimizer": "adam", "randomSeed": 0, **PIXELS},
                      limits={"maxTrials": 2, "maxConcurrentTrials": 1},
                      sweep={"samplingAlgorithm": "random", "earlyTermination": BANDIT}, search_space=SPACE)
            self.seed = seed_with_good_first(self.job, tmp)
            self.process = subprocess.Popen(
                [*KUBEVISION, "run", str(self.job), "--output", str(self.out), "--seed", str(self.seed)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV,
            )
            trigger = self.out / "trials" / "1" / "trial.json"
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and self.process.poll() is None:
                if trigger.exists():
                    os.kill(self.process.pid, signal.SIGKILL)
                    self.killed = True
                    return
                time.sleep(0.05)
        except BaseException as err:  # reported by finish()
            self.error = err

    def finish(self, timeout: float = 300) -> str:
        """Wait for the kill; the first run's output."""
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert self.process is not None, "the first run did not start"
        output = self.process.communicate(timeout=timeout)[0]
        assert self.killed, f"the first run was not killed at trial 1:\n{output}"
        return output

    def stop(self) -> None:
        """Kill the first run if it still runs (end of the session)."""
        self._thread.join(5)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def start(digits: Path, tmp: Path) -> FirstRun:
    return FirstRun(digits, tmp)
