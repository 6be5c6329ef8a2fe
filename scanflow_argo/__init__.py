"""scanflow-argo: autonomic ML workflows on Argo, Seldon, Prometheus and MLflow."""
