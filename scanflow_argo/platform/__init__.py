"""Platforms: the one interface through which the CLI and agents act (local or Kubernetes)."""

from ..errors import SetupError
from ..settings import Settings
from .base import TERMINAL_PHASES, DeploymentStatus, NodeStatus, Platform, RunStatus

__all__ = ["TERMINAL_PHASES", "DeploymentStatus", "NodeStatus", "Platform", "RunStatus", "get_platform"]


def get_platform(settings: Settings) -> Platform:
    """The platform ``settings.platform`` names (``local`` or ``kubernetes``)."""
    if settings.platform == "local":
        from .local import LocalPlatform  # only the platform in use: brings the engine

        return LocalPlatform(settings)
    if settings.platform == "kubernetes":
        from .kubernetes import KubernetesPlatform  # only the platform in use: Kubernetes client

        return KubernetesPlatform(settings)
    raise SetupError(f"unknown platform {settings.platform!r}: use 'local' or 'kubernetes' (SCANFLOW_PLATFORM or --platform)")
