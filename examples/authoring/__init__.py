"""A small application that uses every authoring feature (docs/authoring.md): ``examples/authoring/app.py``."""
