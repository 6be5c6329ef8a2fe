"""YAML as the Kubernetes API server reads a manifest: plain JSON values, timestamps kept as text, and a bound on
what aliases may expand to. Every reader of user manifests goes through it: the engine
(``engine/core/manifest.py``), ``scanflow-argo apply`` (``platform/apply.py``) and ``scanflow-argo lint``
(``compile/lint.py``).
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["MAX_YAML_NODES", "KubeLoader", "load_yaml", "yaml_problem"]


MAX_YAML_NODES = 1_000_000
"""The most YAML nodes one document may expand to, aliases counted at full size. go-yaml (which the API
server's ``sigs.k8s.io/yaml`` uses) refuses "excessive aliasing" (``decode.go`` ``allowedAliasRatio``, after
CVE-2019-11253, the "billion laughs"); PyYAML builds an alias as one shared object, so the expansion only
happens later (``json.dumps``, a deep copy) and would fill the memory. A million nodes is far beyond any
real manifest (the API server takes at most 3 MiB) and a few hundred MB at worst."""


class KubeLoader(yaml.SafeLoader):
    """YAML as the Kubernetes API server reads a manifest: ``sigs.k8s.io/yaml`` decodes into plain values with
    go-yaml, which keeps a timestamp-looking scalar (``2018-08-01T09:57:43Z``) a string when the target is an
    ``interface{}`` (go-yaml v2 ``decode.go``, "for backward compatibility reasons"); PyYAML's safe loader
    would make it a ``datetime``, which is no JSON value. A document that expands past ``MAX_YAML_NODES``
    (an alias bomb) is refused while it is composed, before anything is built from it."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._expanded: dict[int, int] = {}

    def compose_document(self) -> Any:
        self._expanded = {}
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        node = super().compose_node(parent, index)
        if node is None or id(node) in self._expanded:  # an alias: its size is known, it is counted where it is used
            return node
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._expanded.get(id(child), 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._expanded.get(id(k), 1) + self._expanded.get(id(v), 1) for k, v in node.value)
        else:
            size = 1
        if size > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"the document expands to more than {MAX_YAML_NODES:,} YAML nodes through its aliases (an alias "
                "bomb?); write the repeated parts out or make the document smaller",
                node.start_mark,
            )
        self._expanded[id(node)] = size
        return node


KubeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    """One YAML document, read as the API server reads it (``KubeLoader``)."""
    return yaml.load(text, Loader=KubeLoader)  # a SafeLoader: no Python objects


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and where (PyYAML's own text spans lines and quotes the source)."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem:
        mark = err.problem_mark
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"{err.problem}{at}"
    return " ".join(str(err).split())
