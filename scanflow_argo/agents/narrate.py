"""What an agent says in its log: one line per thing that happened, plain text or JSON lines.

The audit log (``decisions.jsonl``) is the record; this is the running commentary an operator reads with
``kubectl logs`` or in a terminal: a sensor that went stale or came back, a rule that became pending,
fired, cleared or reset, every action done, dry-run, failed, refused (concurrency limit) or held back by
its cooldown. Each line is a ``logging`` record of the ``scanflow_argo.agents`` logger whose ``fields``
(``agent``, ``event`` and the event's own) ``JsonFormatter`` writes as one JSON object — the shape
structured-logging stacks (Loki, Elasticsearch) take as is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..spec.agent import Agent
from .decide import SensorWindow, cooldown_left, is_stale

__all__ = ["LOG_FORMATS", "JsonFormatter", "Narrator", "configure_logging"]

log = logging.getLogger("scanflow_argo.agents")

LOG_FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message`` and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **(getattr(record, "fields", None) or {}),
        }
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """The root handler for ``agent run``: ``text`` (time, level, logger, message) or ``json`` lines, at ``level``."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "urllib3", "aiohttp.access"):  # a line per request would drown the agent's own
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _name(action: Any) -> str:
    """An action's name (every concrete action has one; the base class does not declare it)."""
    return str(action.name)


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class Narrator:
    """Turns sensor windows and audit records into log lines, each said once."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._stale: dict[str, str | None] = {}
        self._held: dict[str, float] = {}  # action -> the attempt whose cooldown was announced

    def _say(self, level: int, message: str, event: str, **fields: Any) -> None:
        log.log(
            level, f"agent {self.agent.name}: {message}", extra={"fields": {"agent": self.agent.name, "event": event, **fields}}
        )

    def sensors(self, windows: Mapping[str, SensorWindow], now: float) -> None:
        """A line when a sensor goes stale (or fails) and when it comes back; the first value too."""
        for name, window in windows.items():
            why = is_stale(window, now)
            if name in self._stale and (self._stale[name] is None) == (why is None):
                continue
            first = name not in self._stale
            self._stale[name] = why
            latest = window.latest if window is not None else None
            if why is None and latest is not None:
                what = "first value" if first else "recovered"
                self._say(
                    logging.INFO,
                    f"sensor {name} {what}: {_value(latest.v)}",
                    f"sensor.{what.split()[0]}",
                    sensor=name,
                    value=latest.v,
                )
            elif why is not None and not (first and why == "never read"):
                self._say(logging.WARNING, f"sensor {name} is stale: {why}", "sensor.stale", sensor=name, reason=why)

    def record(self, record: Mapping[str, Any]) -> None:
        """One line per audit record: rule transitions, actions and their outcome, dropped messages."""
        kind = record.get("kind")
        if kind == "rule":
            event = str(record.get("event"))
            inputs = record.get("inputs") or {}
            values = ", ".join(
                f"{k}={_value((v or {}).get('value') if isinstance(v, Mapping) else v)}" for k, v in inputs.items()
            )
            word = {"fire": "firing", "clear": "clear", "pending": "pending", "reset": "reset (condition gone before `for`)"}
            level = logging.WARNING if event == "fire" else logging.INFO
            self._say(
                level,
                f"rule {record.get('rule')} {word.get(event, event)}" + (f" ({values})" if values else ""),
                f"rule.{event}",
                rule=record.get("rule"),
                inputs=inputs,
            )
        elif kind == "action":
            self._action(record)
        elif kind == "consume":
            self._say(logging.WARNING, f"message {record.get('message_id')} dropped: {record.get('reason')}", "message.dropped")

    def _action(self, record: Mapping[str, Any]) -> None:
        status, action = str(record.get("status")), record.get("action")
        detail = record.get("result_detail") or {}
        params = record.get("params") or {}
        fields = {"action": action, "action_kind": record.get("action_kind"), "status": status, "key": record.get("key")}
        if status == "ok":
            self._held.pop(str(action), None)
            what = ", ".join(f"{k}={_value(v)}" for k, v in detail.items()) or "done"
            self._say(
                logging.INFO,
                f"action {action} done ({record.get('action_kind')}): {what}",
                "action.done",
                **fields,
                detail=detail,
            )
        elif status == "dry-run":
            what = ", ".join(f"{k}={_value(v)}" for k, v in params.items())
            self._say(
                logging.INFO,
                f"action {action} ({record.get('action_kind')}) decided, not done (dry-run)" + (f": {what}" if what else ""),
                "action.dry_run",
                **fields,
                params=params,
            )
        elif status == "failed":
            self._say(
                logging.ERROR,
                f"action {action} failed: {record.get('reason')}",
                "action.failed",
                **fields,
                reason=record.get("reason"),
            )
        else:
            reason = str(record.get("reason") or "")
            event = "action.refused" if "concurren" in reason or "running" in reason else "action.skipped"
            self._say(logging.WARNING, f"action {action} not done: {reason}", event, **fields, reason=reason)

    def held(
        self,
        rule_events: Mapping[str, str],
        firing: Mapping[str, bool],
        planned: set[str],
        state: Mapping[str, Any],
        now: float,
    ) -> None:
        """A line when an action a rule asks for now is held back by its cooldown (once per attempt);
        ``planned``: the actions decided this evaluation (they are not held)."""
        for plan in self.agent.plans:
            if plan.when is None:
                continue
            wanted = rule_events.get(plan.when) == "fire" or (plan.on == "while" and firing.get(plan.when))
            if not wanted:
                continue
            for action in plan.actions:
                name = _name(action)
                if name in planned:
                    continue
                left = cooldown_left(action, state, now)
                last = float((state.get("last_attempt") or {}).get(name) or 0.0)
                if left is None or self._held.get(name) == last:
                    continue
                self._held[name] = last
                self._say(
                    logging.INFO,
                    f"action {name} held by its cooldown: {left:.1f}s left (rule {plan.when})",
                    "action.cooldown",
                    action=name,
                    rule=plan.when,
                    seconds_left=round(left, 1),
                )
