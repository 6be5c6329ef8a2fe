"""The package's own foundation: public API, settings, errors, clock, process helpers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import scanflow_argo
from scanflow_argo import _proc
from scanflow_argo.clock import ManualClock, iso
from scanflow_argo.errors import Issue, ScanflowError, ValidationError, redact
from scanflow_argo.settings import Settings, describe


def test_every_public_name_resolves() -> None:
    for name in scanflow_argo.__all__:
        assert getattr(scanflow_argo, name) is not None, name


def test_import_is_cheap_and_pulls_no_heavy_library() -> None:
    code = "import sys, scanflow_argo; print(sorted(m for m in ('mlflow','torch','kubernetes','hera','aiohttp') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_settings_from_env_reads_every_group() -> None:
    env = {
        "SCANFLOW_HOME": "/tmp/h",
        "SCANFLOW_PLATFORM": "kubernetes",
        "SCANFLOW_ENGINE_PARALLELISM": "3",
        "SCANFLOW_ENGINE_IMAGE_MAP": "a/b=python,c=shell",
        "SCANFLOW_SERVING_DRAIN_SECONDS": "0.5",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:1",
        "SCANFLOW_TRACKING": "0",
        "SCANFLOW_PROMETHEUS_PORT": "9999",
        "SCANFLOW_NAMESPACE": "ml",
        "SCANFLOW_ARGO_VERIFY_TLS": "false",
        "SCANFLOW_AGENT_DRY_RUN": "1",
    }
    s = Settings.from_env(environ=env)
    assert s.home == Path("/tmp/h") and s.platform == "kubernetes"
    assert s.engine.parallelism == 3 and dict(s.engine.image_map) == {"a/b": "python", "c": "shell"}
    assert s.serving.drain_seconds == 0.5
    assert s.tracking.uri == "http://127.0.0.1:1" and s.tracking.enabled is False
    assert s.prometheus.port == 9999 and s.kubernetes.namespace == "ml"
    assert s.kubernetes.verify_tls is False and s.agent.dry_run is True
    assert describe(s)["engine"]["parallelism"] == 3


def test_settings_defaults_do_not_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCANFLOW_HOME", "/elsewhere")
    assert Settings().home == Path(".scanflow")
    assert Settings.from_env(environ={}).home == Path(".scanflow")


def test_every_settings_field_is_documented() -> None:
    import ast
    import inspect

    from scanflow_argo import settings as module

    tree = ast.parse(inspect.getsource(module))
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Settings")):
        body = cls.body
        for i, node in enumerate(body):
            if isinstance(node, ast.AnnAssign):
                nxt = body[i + 1] if i + 1 < len(body) else None
                documented = isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant)
                assert documented, f"{cls.name}.{node.target.id} has no docstring"  # type: ignore[union-attr]
                assert node.value is not None, f"{cls.name}.{node.target.id} has no default"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ("Authorization: Bearer Zm9v_YmFyTG9uZ3Rva2VuMTIz", "TG9uZ3Rva2VuMTIz"),  # token_urlsafe has '_'
        ("authorization: bearer xyz", "xyz"),  # the header says it is a credential, whatever it looks like
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("password=hunter2 rest", "hunter2"),
        ("https://user:s3cret@example.org/x", "s3cret"),
        ("token: xyz", "xyz"),
        ("token: xyz.", "xyz"),
        ("SCANFLOW_AGENT_TOKEN=abc", "abc"),
        ('{"token": "abc def"}', "abc"),
        ("{'password': 'pw'}", "pw"),
        ("aws_secret_access_key = AKIAexample", "AKIAexample"),
        ("invalid token: abc123 expired", "abc123"),
        ("api-key: k3y", "k3y"),
        ("GITHUB_TOKEN: ghpexampletoken\nnext line", "ghpexampletoken"),
        ("client_secret=s", "=s"),
    ],
)
def test_errors_redact_secrets(text: str, hidden: str) -> None:
    assert hidden not in redact(text)
    assert hidden not in str(ScanflowError(text))


@pytest.mark.parametrize(
    "text",
    [
        "no API token: set the environment variable SCANFLOW_AGENT_TOKEN (from a Secret on the cluster)",
        "the bearer token is missing",
        "send 'Authorization: Bearer <token>' (the agent's token variable)",
        "set a token in the Secret, then restart",
        "AgentSettings(token_env='SCANFLOW_AGENT_TOKEN')",
        "max_tokens: 5",
        "secret: set it with kubectl create secret",
        "password: required for login",
        "Basic auth is not supported",
        "tokens: 3 left, secrets: 2 mounted",
        "when expression 'a === b' at column 3: Invalid token: '==='",  # govaluate's lexer error
        "Invalid token: '_' (hint: try wrapping the affected expression in quotes)",
    ],
)
def test_errors_redact_keeps_ordinary_words(text: str) -> None:
    assert redact(text) == text
    assert str(ScanflowError(text)) == text


def test_validation_error_lists_every_issue() -> None:
    err = ValidationError([Issue("wf/a", "bad", "fix a"), Issue("wf/b", "worse", "fix b")], subject="workflow wf")
    assert "2 issue(s)" in str(err) and "wf/a: bad — fix a" in str(err) and "wf/b" in str(err)


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(start=0.0)
    clock.sleep(5)
    assert clock.now() == 5 and clock.monotonic() == 5
    assert iso(0) == "1970-01-01T00:00:00Z"


def test_spawned_group_is_stopped_with_its_children(tmp_path: Path) -> None:
    # The child starts a grandchild; stopping by group must end both.
    script = (
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    )
    child = _proc.spawn([sys.executable, "-c", script], name="sleeper", log=tmp_path / "log")
    time.sleep(0.3)
    assert child.alive()
    child.stop(timeout=5)
    assert not child.alive()
    assert not _proc._has_live_member(child.pid)


def test_wait_http_reports_a_dead_child_with_its_log(tmp_path: Path) -> None:
    child = _proc.spawn([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], name="broken", log=tmp_path / "log")
    with pytest.raises(ScanflowError, match="broken exited with code 3"):
        _proc.wait_http(f"http://127.0.0.1:{_proc.free_port()}/", timeout=10, child=child)


def test_test_modules_have_unique_names() -> None:
    """pytest imports a test module outside a package by its basename (rootdir ``prepend`` mode): two
    ``test_cli.py`` in different folders stop the whole suite at collection. Folders without an
    ``__init__.py`` must not share a test module name."""
    root = Path(__file__).parent
    seen: dict[str, Path] = {}
    for path in sorted(root.rglob("test_*.py")):
        if (path.parent / "__init__.py").exists():
            continue  # inside a package: imported by its dotted name
        other = seen.setdefault(path.name, path)
        assert other == path, f"{path.relative_to(root)} and {other.relative_to(root)} share a name: rename one"
