"""The toy world and the small CLIP trained on it: a model whose meaning tests can check."""
