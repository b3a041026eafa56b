"""kopf operator: thin handlers, pure planners in reconcile/, one gateway to the API. No torch."""
