"""``docker/runtime.Dockerfile`` read as text (no Docker daemon here): pinned base and packages, non-root,
and the package with pipelines/ and agents/ the compiled manifests name."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "runtime.Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_base_image_is_pinned() -> None:
    args = dict(rest.split("=", 1) for op, rest in _instructions() if op == "ARG" and "=" in rest)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", args["PYTHON_IMAGE"])
    assert [rest for op, rest in _instructions() if op == "FROM"] == ["${PYTHON_IMAGE}"]


def test_every_installed_package_is_pinned() -> None:
    runs = " ".join(rest for op, rest in _instructions() if op == "RUN")
    for command in re.findall(r"pip install ([^&]+)", runs):
        for word in command.split():
            if word.startswith(("-", "$", '"$', "/", ".")):
                continue
            assert re.fullmatch(r'"?[A-Za-z0-9_.-]+==[0-9][^"]*"?', word), f"unpinned: {word}"
    assert "-r /tmp/runtime.txt" in runs  # requirements/main.txt's pins
    for line in (ROOT / "requirements" / "main.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert "==" in line, f"requirements/main.txt: {line} is not pinned"


def test_runs_as_non_root_with_the_code() -> None:
    instructions = _instructions()
    users = [rest for op, rest in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] == "1000"  # the manifests' runAsUser
    copied = {rest.split()[0] for op, rest in instructions if op == "COPY"}
    assert {"scanflow_argo", "pipelines", "agents"} <= copied
