"""Views, split by area: browse (datasets, samples, documents) and imports."""
