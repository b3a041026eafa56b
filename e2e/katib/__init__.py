"""Katib's rules, written from its source (kubeflow/katib v0.19, `pkg/controller.v1beta1/...`).

Why a package of pure functions: the e2e scenario is only as good as its imitation of Katib, so every
rule Katib applies to what the operator reads (Trial names and labels, the runSpec substitution, the
StdOut collector's parsing, the observation's min/max/latest, the Experiment's counters, optimal
trial and completion conditions) is a small function with its own test against the upstream source's
behaviour and the upstream OpenAPI shapes. The only I/O lives in `e2e.katib.pod` (local processes)
and `e2e.katib.rest` (the API server).

- `conditions`: Katib's setCondition / Mark*Status semantics for Trial and Experiment conditions.
- `defaults`: what Katib's mutating webhook fills into an Experiment.
- `suggestions`: random (hyperopt-like) and grid (optuna GridSampler-like) parameter assignments.
- `trials`: Trial manifests as the experiment controller creates them, runSpec substitution,
  Trial status transitions as the trial controller writes them.
- `collector`: the StdOut/File TEXT metrics collector and the trial controller's observation.
- `experiment_status`: the Experiment's counters, currentOptimalTrial and completion conditions.
- `training_operator`: the PyTorchJob status the training operator writes.
- `pod`: one replica of a trial job as local processes (volumes as folders, env, the collector's
  `sh -c` wrapping).
- `rest`: a minimal asynchronous Kubernetes REST client.
"""
