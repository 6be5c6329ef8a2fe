"""Agent definitions shipped with the project (``agents.mnist``: the MNIST case study)."""
