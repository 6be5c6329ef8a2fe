"""The MNIST autonomic case study: ``scanflow-argo demo mnist [--quick] [--out report/]``.

``scenario`` runs it end to end, ``traffic`` is the load generator, ``report`` writes the HTML/JSON
report, ``config`` holds the full and the quick settings.
"""
