"""Sweeps: search-space syntax, samplers, early-termination policies, AutoMode portfolio (pure code).

Why this package never imports optuna on import: the operator imports `termination`, `protocol`,
`automode`, `space` and `identity` (all pure), and its image has no optuna. Only
`kubevision.sweep.study` (the embedded runner's Optuna study) imports it; import it by name.
"""

from __future__ import annotations

from kubevision.sweep.automode import automode_search_space, portfolio
from kubevision.sweep.identity import spec_fingerprint, spec_identity
from kubevision.sweep.protocol import DecisionService
from kubevision.sweep.space import check_sweep, grid_points, individual_params, sample_value, sweep_warnings
from kubevision.sweep.termination import Decision, Policy, decide, policy_from_job

__all__ = [
    "Decision",
    "DecisionService",
    "Policy",
    "automode_search_space",
    "check_sweep",
    "decide",
    "grid_points",
    "individual_params",
    "policy_from_job",
    "portfolio",
    "sample_value",
    "spec_fingerprint",
    "spec_identity",
    "sweep_warnings",
]
