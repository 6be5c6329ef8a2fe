"""``scanflow-argo rollout start|status|promote|abort``: a person's hand on an agent's canary roll-outs.

A roll-out lives in the agent that drives it (``agents/canary.py``): these commands go through that
agent's HTTP API (its ``endpoint.json`` in ``HOME/agents/AGENT``, the token as ``agents.auth.client_token``
finds it), so the running agent is the one writer of its state. ``status`` of an agent that is not
running reads its state file. ``--agent`` may be left out when the home has one agent.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import AgentError, NotFoundError, SpecError, UnavailableError
from ..settings import Settings

__all__ = ["register"]

_TIMEOUT = 60.0  # a start or an abort waits for the deployment to serve the new split


def register(sub: Any) -> None:
    """Add the ``rollout`` group to the top-level subparsers."""
    p = sub.add_parser(
        "rollout",
        help="start, show, promote or abort an agent's canary roll-out of a model deployment",
        description="Roll-outs (issue 17) are driven by an agent: each step's traffic split, its analysis on "
        "Prometheus (Argo Rollouts' metric fields), and the outcome — next step, abort, or a pause for a person.",
    )
    rsub = p.add_subparsers(dest="rollout_command", metavar="ACTION")
    rsub.required = True
    start = rsub.add_parser("start", help="start a roll-out of DEPLOYMENT to a challenger model")
    start.add_argument("name", metavar="DEPLOYMENT")
    start.add_argument("--model-uri", required=True, help="the challenger, e.g. models:/mnist/7")
    start.add_argument("--version", default="", help="the challenger's registry version (its alias moves at the end)")
    start.add_argument("--model", default="", help="registered model whose --alias moves to --version when promoted")
    start.add_argument("--alias", default="champion")
    start.add_argument("--canary", default="canary", help="the canary predictor's name")
    start.add_argument(
        "--steps", default="shadow,10,50,100", help="comma-separated steps: shadow or a traffic percent (default %(default)s)"
    )
    start.add_argument(
        "--analysis", type=Path, help="JSON or YAML file: a list of Argo Rollouts metrics (name, provider.prometheus.query, …)"
    )
    for name, helptext in (
        ("status", "the roll-out's steps, state, analysis runs and their measurements"),
        ("promote", "promote a paused roll-out to its next step (as if its analysis had succeeded)"),
        ("abort", "abort: all traffic back to stable, canary removed, aliases unchanged"),
    ):
        cmd = rsub.add_parser(name, help=helptext)
        cmd.add_argument("name", metavar="DEPLOYMENT")
        if name == "abort":
            cmd.add_argument("--reason", default="aborted by a person")
        if name == "status":
            cmd.add_argument("--json", action="store_true", help="print the roll-out as JSON")
        cmd.set_defaults(func=globals()[f"cmd_{name}"])
    for cmd in (start, *[rsub.choices[n] for n in ("status", "promote", "abort")]):
        cmd.add_argument("--agent", help="the agent driving it (default: the only agent of this home)")
    start.set_defaults(func=cmd_start)


def _steps(text: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part == "shadow":
            out.append({"shadow": {}})
        elif part.isdigit():
            out.append({"setWeight": int(part)})
        else:
            raise SpecError(f"--steps: {part!r} is neither 'shadow' nor a percent — e.g. shadow,10,50,100")
    return out


def _analysis(path: Path | None) -> list[dict[str, Any]]:
    if path is None:
        return []
    import yaml  # CLI start-up: only when an analysis file is given

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise SpecError(f"--analysis {path}: cannot read it ({err}) — give a JSON or YAML list of metrics") from err
    metrics = data.get("metrics") if isinstance(data, dict) else data
    if not isinstance(metrics, list):
        raise SpecError(f"--analysis {path}: expected a list of metrics (or an AnalysisTemplate spec with metrics:)")
    return metrics


def _agent(settings: Settings, given: str | None) -> str:
    root = settings.home / "agents"
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    if given:
        if given not in names:
            raise NotFoundError(f"no agent {given!r} in {root} (agents: {', '.join(names) or 'none'})")
        return given
    if len(names) != 1:
        raise AgentError(f"give --agent: this home has {len(names)} agents ({', '.join(names) or 'none'})")
    return names[0]


def _url(settings: Settings, agent: str) -> str | None:
    from .._proc import cmdline_of  # CLI start-up: this command only

    try:
        doc = json.loads((settings.home / "agents" / agent / "endpoint.json").read_text())
        url, pid = str(doc["url"]).rstrip("/"), int(doc["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if cmdline_of(pid) is not None else None


def _call(settings: Settings, agent: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    import httpx  # CLI start-up: this command only

    from ..agents.auth import client_token  # CLI start-up: this command only

    url = _url(settings, agent)
    if url is None:
        raise UnavailableError(f"agent {agent!r} is not running here — start it with `scanflow-argo agent run`")
    token = client_token(settings)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.request(method, url + path, json=body if body is not None else {}, headers=headers, timeout=_TIMEOUT)
    except httpx.HTTPError as err:
        raise UnavailableError(f"agent {agent!r} at {url} did not answer ({type(err).__name__})") from err
    try:
        data = resp.json()
    except ValueError:
        data = {"error": resp.text[:300]}
    if resp.status_code == 404:
        raise NotFoundError(str(data.get("error")))
    if resp.status_code >= 400:
        raise AgentError(f"agent {agent!r} refused: {data.get('error') or resp.status_code}")
    return data


def cmd_start(args: argparse.Namespace, settings: Settings) -> int:
    agent = _agent(settings, args.agent)
    body = {
        "model_uri": args.model_uri,
        "version": args.version,
        "model": args.model,
        "alias": args.alias,
        "canary": args.canary,
        "steps": _steps(args.steps),
        "analysis": _analysis(args.analysis),
    }
    data = _call(settings, agent, "POST", f"/rollouts/{args.name}", body)
    print(f"roll-out {args.name} started by agent {agent}: step {data['step']} {data['phase']}")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    agent = _agent(settings, args.agent)
    if _url(settings, agent) is not None:
        entry = _call(settings, agent, "GET", f"/rollouts/{args.name}")
    else:  # not running: its state file says where the roll-out stopped
        try:
            state = json.loads((settings.home / "agents" / agent / "state.json").read_text())
        except (OSError, ValueError):
            state = {}
        found = (state.get("rollouts") or {}).get(args.name)
        if not isinstance(found, dict):
            raise NotFoundError(f"agent {agent!r} has no roll-out {args.name!r}")
        entry = {**found, "agent": agent, "agent_paused": bool(state.get("paused")), "agent_running": False}
    if args.json:
        print(json.dumps(entry, indent=2))
        return 0
    _show(args.name, entry)
    return 0


def _show(name: str, entry: dict[str, Any]) -> None:
    spec, state = entry["spec"], entry["state"]
    steps = spec.get("steps") or []
    print(f"roll-out {name}: {state['phase']} at step {state['step']}/{len(steps)}  canary {spec.get('model_uri', '-')}")
    if state.get("message"):
        print(f"  {state['message']}")
    active = state["phase"] in ("Progressing", "Paused")
    if active and entry.get("agent_paused"):
        print(
            f"  agent {entry.get('agent')} is paused: the split is held at this step and no analysis runs until "
            "the agent resumes (POST /resume, or Resume on the UI's Agents page); abort still goes back to stable"
        )
    if active and entry.get("agent_running") is False:
        print(f"  agent {entry.get('agent')} is not running: the roll-out goes on at this step when it starts again")
    for i, step in enumerate(steps):
        mark = ">" if i == state["step"] and state["phase"] in ("Progressing", "Paused") else " "
        what = "shadow" if "shadow" in step else f"setWeight {step.get('setWeight')}"
        print(f"  {mark} step {i}: {what}")
    for run in entry.get("runs") or []:
        print(f"  analysis of step {run.get('step')}: {run.get('phase', '-')}")
        for metric, measurements in (run.get("measurements") or {}).items():
            values = ", ".join(f"{m.get('value')}={m.get('phase')}" for m in measurements)
            print(f"    {metric}: {values}")
    current = entry.get("measurements") or {}
    if current and state["phase"] in ("Progressing", "Paused"):
        print(f"  analysis of step {state['step']}: running")
        for metric, measurements in current.items():
            print(f"    {metric}: " + ", ".join(f"{m.get('value')}={m.get('phase')}" for m in measurements))


def cmd_promote(args: argparse.Namespace, settings: Settings) -> int:
    agent = _agent(settings, args.agent)
    data = _call(settings, agent, "POST", f"/rollouts/{args.name}/promote")
    print(f"roll-out {args.name}: {data['phase']} at step {data['step']}")
    return 0


def cmd_abort(args: argparse.Namespace, settings: Settings) -> int:
    agent = _agent(settings, args.agent)
    data = _call(settings, agent, "POST", f"/rollouts/{args.name}/abort", {"reason": args.reason})
    print(f"roll-out {args.name}: {data['phase']} — {data['message']}")
    return 0
