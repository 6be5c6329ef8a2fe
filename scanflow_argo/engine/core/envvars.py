"""Kubernetes' ``$(VAR)`` references: what the kubelet expands in a container's ``command``, ``args`` and
``env`` values before the container starts (Argo's ``{{…}}`` are resolved before, by the engine).

As ``k8s.io/kubernetes`` ``third_party/forked/golang/expansion/expand.go`` (``Expand``,
``MappingFuncFor``; its cases are ``expand_test.go``'s) and ``pkg/kubelet/container/helpers.go``
``ExpandContainerCommandAndArgs``: ``$(NAME)`` is replaced by the variable's value when the container
declares it, and left as written when it does not; ``$$`` is one literal ``$``; ``$NAME``, ``${NAME}``,
``$?`` and an unterminated ``$(`` pass through unchanged; a value is never expanded twice. An ``env``
value may refer to the variables declared before it (``pkg/kubelet/kubelet_pods.go``
``makeEnvironmentVariables``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["expand", "expand_all", "expand_env"]


def expand(text: str, env: Mapping[str, str]) -> str:
    """``text`` with its ``$(NAME)`` references to ``env`` replaced, Kubernetes' way."""
    if "$" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":  # an escaped operator: one "$", and the next character is read afresh
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:  # unterminated: "$(" is kept and reading goes on after it
                out.append("$(")
                i += 2
                continue
            name = text[i + 2 : close]
            out.append(env.get(name, f"$({name})"))
            i = close + 1
        else:  # an operator that starts no reference: kept with the character after it
            out.append(ch + nxt)
            i += 2
    return "".join(out)


def expand_all(values: Iterable[str], env: Mapping[str, str]) -> list[str]:
    """Each of ``values`` (a container's command or args) expanded against ``env``."""
    return [expand(v, env) for v in values]


def expand_env(declared: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A container's ``env`` in order, each value expanded against the variables declared before it."""
    env: dict[str, str] = {}
    for name, value in declared:
        env[name] = expand(value, env)
    return env
