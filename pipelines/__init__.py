"""Python pipeline definitions: each sub-package declares an ``Application`` (``pipelines.mnist:app``)."""
