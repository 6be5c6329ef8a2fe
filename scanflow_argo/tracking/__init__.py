"""Tracking in MLflow: the local server, a run per workflow and a nested run per step, the model registry.

Modules: ``server`` (local ``mlflow server``, which URI to use), ``hooks`` (engine hooks over REST),
``step`` (helpers inside a step), ``registry`` (register, aliases, promotion, download), ``pyfunc`` (the
MLflow flavor of a model folder). Nothing here imports mlflow at import time.
"""
