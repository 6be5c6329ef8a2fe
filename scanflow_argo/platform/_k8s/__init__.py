"""Pieces of the Kubernetes platform: API access and error mapping (``api``), Argo workflows through the
Argo Server or Workflow custom objects (``argo``), and SeldonDeployments (``seldon``).

``scanflow_argo.platform.kubernetes.KubernetesPlatform`` assembles them behind the ``Platform`` protocol.
"""
