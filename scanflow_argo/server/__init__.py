"""The embedded default's Argo Server: Argo's REST API and a web UI in front of the local platform.

A second front door onto the same ``LocalPlatform`` and engine the CLI uses (one implementation, two
front doors): Hera's ``WorkflowsService``, the ``argo-workflows`` SDK and this project's own Argo Server
client talk to it as to Argo's server, and the UI draws runs, templates, deployments and agents.

Modules (one concern each): ``app`` (assembly, info/version/userinfo, running), ``auth`` (the bearer
token, the cookie, where it may listen), ``http`` (Argo's error shape, parameters, bodies, stream
framing), ``workflows`` (WorkflowService), ``templates`` (WorkflowTemplates, ClusterWorkflowTemplates,
CronWorkflows), ``streams`` (the watch and pod logs), ``lint`` (checks before accepting an object),
``ui`` (pages, assets, login), ``deployments`` and ``agent_proxy`` (the UI's views of SeldonDeployments
and agents). It sits below the CLI and above the agents: ``cli → server → agents → platform → …``.
"""

from __future__ import annotations

from .app import DEFAULT_PORT, ArgoServer, ServerOptions, build_app
from .auth import load_or_create_token, read_token, token_path

__all__ = ["DEFAULT_PORT", "ArgoServer", "ServerOptions", "build_app", "load_or_create_token", "read_token", "token_path"]
