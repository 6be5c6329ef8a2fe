"""Platforms: the one interface through which the CLI and agents act (local or Kubernetes)."""

from ..settings import Settings
from .base import TERMINAL_PHASES, DeploymentStatus, NodeStatus, Platform, RunStatus

__all__ = ["TERMINAL_PHASES", "DeploymentStatus", "NodeStatus", "Platform", "RunStatus", "get_platform"]


def get_platform(settings: Settings) -> Platform:
    """The platform ``settings.platform`` names (``local`` or ``kubernetes``)."""
    from ..errors import SetupError

    if settings.platform == "local":
        from .local import LocalPlatform

        return LocalPlatform(settings)
    if settings.platform == "kubernetes":
        from .kubernetes import KubernetesPlatform

        return KubernetesPlatform(settings)
    raise SetupError(f"unknown platform {settings.platform!r}: use 'local' or 'kubernetes' (SCANFLOW_PLATFORM or --platform)")
