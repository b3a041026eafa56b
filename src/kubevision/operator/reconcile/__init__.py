"""Pure planners: a custom resource in, child manifests out.

Why pure: `kubevision plan job.yaml` must print exactly what the operator would create, with no
cluster, for review and GitOps diffs; tests can check every manifest against the upstream schemas;
and the kopf handlers stay thin (read the CR, call a planner, apply the result through the gateway).
Nothing here does I/O or reads the clock, so the same job always gives byte-identical manifests.

- `plan_job(job, namespace=..., settings=..., owner=..., checkpoint_uri=...) -> JobPlan`: the
  ConfigMap every trial reads plus one Katib Experiment per search-space sub-space.
- `names`: `experiment_name`, `config_map_name`, `token_secret_name` (deterministic, Katib-safe).
"""

from __future__ import annotations

from kubevision.operator.reconcile.names import config_map_name, experiment_name, token_secret_name
from kubevision.operator.reconcile.plan import JobPlan, plan_job

__all__ = ["JobPlan", "config_map_name", "experiment_name", "plan_job", "token_secret_name"]
