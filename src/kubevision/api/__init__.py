"""The job API: pydantic models of the AutoMLImageJob and InferenceEndpoint custom resources.

No torch and no kubernetes imports here, and nothing else of ours: every other layer imports this one.
"""

from kubevision.api.errors import KubevisionError, Problem

__all__ = ["KubevisionError", "Problem"]
