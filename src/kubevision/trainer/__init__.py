"""Trainer: models, presets, the train loop, evaluation, checkpoints, export. Never imports the operator."""
