"""``memoize`` around a call: the cache is read before the node runs and written when it succeeds
(Argo's ``executeTemplate``, ``workflow/controller/operator.go``: "Check memoization cache …", after the
template's locks are taken and before its Retry node; the save in ``podReconciliation`` for pods,
``executeSteps`` in ``steps.go`` and ``executeDAG`` in ``dag.go`` for steps and DAGs).

- The ``memoize`` block is substituted with the template's variables (``key: "{{inputs.parameters.x}}"``)
  and the cache is the ConfigMap ``cache.configMap.name`` (``features/memo_cache.py``).
- A hit (an entry with a ``nodeID``, not older than ``maxAge`` when one is given) is a node of the
  template's type (``Template.GetNodeType``: ``Retry`` under a ``retryStrategy``) that does not run:
  ``Succeeded`` at once, the entry's ``outputs`` as its outputs, ``memoizationStatus`` ``{hit: true, key,
  cacheName}`` (``initializeCacheHitNode``). A hit steps or DAG node has no children of its own.
- A miss runs the node with ``memoizationStatus.hit`` false — every node of a memoized template carries it
  from the start (``initializeExecutableNode``), a retried attempt too — and, when the node succeeds, saves
  its outputs (none is ``null``) under the key with its node id (a Retry node's: its last attempt's, which
  is the pod Argo saves from). A save that fails errors the node with the cache's message.
- A cache that cannot be read (a key outside ``^[a-zA-Z0-9][-a-zA-Z0-9]*$``, a malformed entry, a bad
  ``maxAge``) errors the node before it runs: a ``Skipped`` node in ``Error`` with Argo's message
  (``initializeNodeOrMarkError``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ...argoexpr.errors import Fail
from ...argoexpr.golang import parse_duration
from ...errors import EngineError
from ..core.context import Call
from ..core.inputs import inputs_doc, template_vars
from ..core.state import NodeDoc, node_id
from ..core.subst import substitute
from ..features.memo_cache import ConfigMapCache
from ..kinds.base import KindContext

__all__ = ["check", "memoization_status", "wrap"]


def check(memo: Any, where: str) -> None:
    """The shape Argo's CRD gives ``memoize``: a ``key`` and ``cache.configMap.name`` (strings)."""
    if memo is None:
        return
    cache = memo.get("cache") if isinstance(memo, Mapping) else None
    config_map = cache.get("configMap") if isinstance(cache, Mapping) else None
    if not isinstance(memo, Mapping) or not isinstance(memo.get("key"), str) or not isinstance(config_map, Mapping):
        raise EngineError(
            f"{where}: memoize needs a key and cache.configMap.name "
            "(memoize: {key: '{{inputs.parameters.x}}', cache: {configMap: {name: my-cache}}})"
        )
    if not isinstance(config_map.get("name"), str) or not config_map["name"]:
        raise EngineError(f"{where}: memoize.cache.configMap.name is missing; name the ConfigMap that holds the cache")
    if memo.get("maxAge") is not None and not isinstance(memo["maxAge"], str):
        raise EngineError(f"{where}: memoize.maxAge must be a string such as '10s' or '24h'")


def memoization_status(tmpl: Mapping[str, Any] | None, hit: bool = False) -> dict[str, Any] | None:
    """A node's ``memoizationStatus`` for a template (None when it is not memoized)."""
    memo = (tmpl or {}).get("memoize")
    if not isinstance(memo, Mapping):
        return None
    return {
        "hit": hit,
        "key": str(memo.get("key", "")),
        "cacheName": str(((memo.get("cache") or {}).get("configMap") or {}).get("name", "")),
    }


def wrap(ctx: KindContext, call: Call, proceed: Callable[[Call], NodeDoc]) -> NodeDoc:
    """Serve ``call`` from its cache, or run it and cache what it produced (straight through when not memoized)."""
    tmpl = call.template
    if not tmpl.get("memoize"):
        return proceed(call)
    nid = node_id(ctx.name, call.name)
    if ctx.state.reusable(nid) is not None:
        return proceed(call)  # resume: a node that already finished is taken as it was
    vars_ = template_vars(ctx.global_scope(), tmpl, call.inputs, ctx.name, call.name, 0)
    memo = substitute(tmpl["memoize"], vars_, strict=False, where=f"memoize of {call.display!r}")
    call = replace(call, template={**tmpl, "memoize": memo})  # nodes below record the resolved key
    key, cache_name = str(memo.get("key", "")), str(memo["cache"]["configMap"].get("name", ""))
    status: dict[str, Any] = {"hit": False, "key": key, "cacheName": cache_name}
    try:
        cache = ConfigMapCache(ctx.settings.home, ctx.namespace, cache_name, ctx.clock)
        entry = cache.load(key)
        hit = entry is not None and entry.hit
        if entry is not None and memo.get("maxAge"):
            try:
                max_age = parse_duration(str(memo["maxAge"])).ns / 1e9
            except Fail as err:
                raise EngineError(f"invalid maxAge: {err.cause}") from None
            hit = hit and entry.fresh(max_age, ctx.clock.now())
    except EngineError as err:
        bad = ctx.new_node(call.name, call.display, "Skipped", call.parent, tmpl, phase="Error")
        bad.pop("memoizationStatus", None)
        return ctx.finish(bad, "Error", str(err))
    if hit and entry is not None:
        return _hit(ctx, call, {**status, "hit": True}, entry.outputs)
    node = proceed(call)
    if node.get("id") != nid:
        return node
    if node.get("memoizationStatus") is None:
        node["memoizationStatus"] = status
    if node.get("phase") == "Succeeded":
        saved_by = node["children"][-1] if node.get("type") == "Retry" and node.get("children") else nid
        try:
            cache.save(key, saved_by, node.get("outputs"))
        except (EngineError, OSError) as err:
            return ctx.finish(node, "Error", str(err))
    ctx.changed()
    return node


def _hit(ctx: KindContext, call: Call, status: dict[str, Any], outputs: dict[str, Any] | None) -> NodeDoc:
    tmpl = call.template
    kind = ctx.kinds.kind_of(tmpl)
    ntype = "Retry" if tmpl.get("retryStrategy") else (kind.node_type if kind is not None else "Pod")
    node = ctx.new_node(call.name, call.display, ntype, call.parent, tmpl, phase="Succeeded")
    doc = inputs_doc(call.inputs)
    if doc:
        node["inputs"] = doc
    node["memoizationStatus"] = status
    if outputs is not None:
        node["outputs"] = outputs
        ctx.register_globals(tmpl, outputs)
    return ctx.finish(node, "Succeeded")
