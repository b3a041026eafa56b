"""Embedded mode: `kubevision run job.yaml` runs a whole AutoML job on this machine.

Why a backend and not a fork: the runner validates the same job models, draws trials from the same
sweep code (`kubevision.sweep`), runs the same trial program (`kubevision train` under torchrun)
and serves the same early-termination protocol as the cluster backend, so a job behaves the same
on a laptop and on Kubernetes. What is local is only the machinery: trials as subprocesses, the
Optuna study in a SQLite file inside the output folder (what makes `--resume` work), GPUs and CPU
threads partitioned between concurrent trials, and the results a person looks at.

Modules, one job each:
- `prepare`: every check before the first trial (job, data, search space, task, output folder, devices);
- `outdir`, `layout`: the output folder (which one, may we write it) and the names inside it;
- `devices`: GPUs and threads per concurrent trial;
- `launch`: one trial's torchrun process (start, graceful stop, kill, leftovers of a killed runner);
- `decisions`: the early-termination endpoint over HTTP on 127.0.0.1;
- `outcomes`: what became of a trial (state, metric, error and log tail), recorded as outcome.json;
- `leaderboard`, `plots`, `report`, `results`: the result files, written atomically;
- `progress`: the live rich display on a terminal, plain lines elsewhere;
- `interrupts`: Ctrl-C as a clean stop;
- `runner`: the scheduling loop that ties them together (`run_job`).
"""
