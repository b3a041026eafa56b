"""Embedded runner: trials as local subprocesses, Optuna storage in the output dir, the report."""
