"""Pure planners: a custom resource in, child manifests out."""
