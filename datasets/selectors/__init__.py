"""Reads, by area: ``browse`` (datasets, samples, documents) and ``generation`` (batches)."""
