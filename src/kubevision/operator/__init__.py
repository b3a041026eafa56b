"""kopf operator: thin handlers, pure planners in reconcile/, one gateway to the API. No torch.

- `main`: how the operator process starts (kopf plus the metrics and decision-service servers);
- `handlers`: the kopf handlers of AutoMLImageJob and the orchestration they share;
- `reconcile`: pure planners (job -> ConfigMap and Katib Experiments) and `reconcile.status`, the pure
  Katib -> job status mapper;
- `gateway`: the only module doing Kubernetes API calls (retries, create-or-adopt);
- `termination_service`: early-termination decisions for the trials of every job, over HTTP;
- `webhook`: the validating admission webhook; `metrics`: Prometheus metrics; `settings`: cluster facts.
"""
