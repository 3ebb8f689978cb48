"""Neural nets: named sizes, the KataGo-style model, model files, batched inference."""
