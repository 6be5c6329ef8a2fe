"""Parts of the local platform: the runs index (``index``) and the lifecycle verbs on run folders (``control``)."""
