"""Tracking in MLflow: the local server, a run per workflow and a nested run per step, the model registry.

Modules: ``_rest`` (``MlflowRest``, the one MLflow client, credentials included: exported here for the
platform and the agents), ``server`` (local ``mlflow server``, which URI to use), ``hooks`` (engine hooks
over REST), ``step`` (helpers inside a step), ``registry`` (register, aliases, promotion, download),
``pyfunc`` (the MLflow flavor of a model folder). Nothing here imports mlflow at import time.
"""

from ._rest import Credentials, MlflowRest, filter_value, missing

__all__ = ["Credentials", "MlflowRest", "filter_value", "missing"]
