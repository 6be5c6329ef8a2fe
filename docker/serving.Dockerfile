# The serving image: the seldon-core 1.18.2 Python microservice running
# scanflow_argo.serving.model.TorchClassifier — the cluster twin of the local .venv-serving.
#
#   docker build -f docker/serving.Dockerfile -t scanflow-argo/serving:0.1.0 .
#
# Pins (requirements/serving.txt): seldon-core 1.18.2 (the newest for Python 3.11; it pins Flask<3,
# protobuf<4, …), torch 2.13.0 CPU, numpy<2, setuptools<81 (gunicorn 20.1 imports pkg_resources).
#
# In a SeldonDeployment (componentSpecs[].spec.containers[].image = this image, graph.name = the
# container's name, graph.modelUri = where the model folder lives): Seldon's storage initializer
# downloads the model folder into /mnt/models, which TorchClassifier loads (model.pt — torch.export
# or TorchScript —, meta.json, drift.npz). Environment:
#   MODEL_DIR       model folder (default /mnt/models; the Seldon parameter model_dir overrides it)
#   FEEDBACK_DIR    feedback store (npz shards, see scanflow_argo/serving/feedback.py); mount a volume
#                   there, or leave unset to keep no feedback inputs
#   TORCH_THREADS   torch intra-op threads (default: torch's choice; set it to the pod's CPU limit)
# Ports are Seldon's defaults, set by the operator: REST 9000, gRPC 5000, metrics 6000 at /prometheus (the operator
# sets PREDICTIVE_UNIT_METRICS_ENDPOINT=/prometheus; the microservice's own default, used locally, is /metrics):
# seldon_api_model_feedback[_reward]_total, drift_score, prediction_confidence. FEEDBACK_DIR comes from the
# compiled SeldonDeployment: <state volume>/feedback/<deployment> (the scanflow-data claim at /var/lib/scanflow).
#
# Only the numpy/torch-only modules of the package are copied: the serving environment lacks the main
# environment's libraries, and nothing here imports them. Runs as uid 1000, read-only root filesystem.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    PYTHONPATH=/app \
    MODEL_DIR=/mnt/models \
    MODEL_NAME=scanflow_argo.serving.model.TorchClassifier \
    SERVICE_TYPE=MODEL

WORKDIR /app

# torch==2.13.0 from the CPU index first (the default index would pull a CUDA build several GB large),
# then the rest of the serving pins.
COPY requirements/serving.txt requirements/serving.txt
RUN pip install --index-url "${TORCH_INDEX}" "torch==2.13.0" \
 && pip install -r requirements/serving.txt

COPY scanflow_argo/__init__.py scanflow_argo/__init__.py
COPY scanflow_argo/serving/__init__.py scanflow_argo/serving/model.py scanflow_argo/serving/drift.py scanflow_argo/serving/feedback.py scanflow_argo/serving/
RUN python -c "import scanflow_argo.serving.model as m; print(m.TorchClassifier)" \
 && useradd --uid 1000 --user-group --no-create-home --home-dir /tmp scanflow

EXPOSE 9000 5000 6000
USER 1000:1000
CMD ["sh", "-c", "exec seldon-core-microservice \"$MODEL_NAME\" --service-type \"$SERVICE_TYPE\""]
