"""Data layer: JSONL/MLTable readers, validation, converters, image store. Imports only kubevision.api."""
