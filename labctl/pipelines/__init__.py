"""Pipelines: weight transfer and inference, pruning, on-chip training, sparse training."""
