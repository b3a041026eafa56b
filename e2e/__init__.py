"""End-to-end scenarios of kubevision: the real operator, the real trial program, Katib played for real.

`e2e.katib` plays Katib's controllers (suggestion, trial, metrics collector, training operator) with
local processes; `e2e.katib_player` drives them against an API server. See README.md for the two
modes (emulated API server, real cluster).
"""
