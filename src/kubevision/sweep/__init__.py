"""Sweeps: search-space syntax, samplers, early-termination policies, AutoMode portfolio (pure code)."""
