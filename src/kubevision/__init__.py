"""kubevision: open-source AutoML for computer vision.

One YAML (an AutoMLImageJob) describes the task, the labelled images, the limits and an optional
search space; the same job runs on one machine or on Kubernetes. See DESIGN.md in the shared folder
and the README for the tour.
"""

__version__ = "0.1.0.dev0"
