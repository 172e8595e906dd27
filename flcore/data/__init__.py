"""Datasets (as in-memory tensors) and the partitioners that split them over clients."""
