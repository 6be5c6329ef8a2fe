"""Images as their real filesystems, commands missing from an image, and the kubelet's ``$(VAR)``.

Sources: argo-workflows f016ad89 ``test/e2e/images/argosay/v1/Dockerfile`` (Ubuntu, Debian's cowsay on
``PATH`` from ``/usr/games``, ``CMD ["cowsay"]``), ``test/e2e/images/argosay/v2/Dockerfile`` (v1 plus the
sh script ``/argosay`` as ``ENTRYPOINT``) and ``v2/argosay`` (its commands); ``cmd/argoexec/commands/
emissary.go`` (``exec.LookPath`` before the command starts: ``failed to find name in PATH: …``),
``cmd/argoexec/main.go`` (that error becomes the termination message, exit code 64) and
``workflow/controller/operator.go`` ``inferFailedReason`` (``main: Error (exit code 64): <message>``);
e2e ``test/e2e/invalid_command_test.go``. Kubernetes: ``third_party/forked/golang/expansion/expand_test.go``
(the expansion cases below) and ``pkg/kubelet/container/helpers.go`` ``ExpandContainerCommandAndArgs``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from scanflow_argo.engine import prepare_run, run_workflow
from scanflow_argo.engine.core.envvars import expand, expand_env
from scanflow_argo.engine.features.images import ARGOSAY, Image, image_of, parse_image
from scanflow_argo.errors import ImageNotMapped, SetupError
from scanflow_argo.settings import Settings

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (apt-get install bubblewrap)")
needs_cowsay = pytest.mark.skipif(
    shutil.which("cowsay", path="/usr/games:/usr/bin") is None, reason="needs Debian's cowsay (apt-get install cowsay)"
)


def wf(container: dict, **template: object) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "img-"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": container, **template}]},
    }


def with_map(settings: Settings, **mapping: str) -> Settings:
    return replace(settings, engine=replace(settings.engine, image_map=mapping))


def pod_log(settings: Settings, run_name: str) -> str:
    return "".join(p.read_text() for p in (settings.home / "runs" / run_name / "nodes").glob("*/main.log"))


# -- argosay v2's /argosay: the twin answers as the image's script -----------------------------------------
@pytest.mark.parametrize(
    ("args", "stdout", "code"),
    [
        ([], "hello argo\n", 0),
        (["echo"], "hello argo\n", 0),
        (["echo", "hi there"], "hi there\n", 0),
        (["echo", "a", "b", "c", "d"], "", 0),  # the image's case has no branch for 4 arguments: nothing, 0
        (["exit"], "", 0),
        (["exit", "3"], "", 3),
        (["sleep", "0"], "", 0),
        (["cat", "{dir}/in.txt"], "line one\nline two\n", 0),
        (["assert_contains", "{dir}/in.txt", "two"], "line two\n", 0),  # grep -F prints the matching line
        (["assert_contains", "{dir}/in.txt", "three"], "", 1),
        (["assert_contains", "{dir}/missing.txt", "x"], "", 2),
        (["cat"], "", 2),  # `set -u`: a missing argument is the shell's error
        (["unknown-command"], "", 1),
    ],
)
def test_the_argosay_twin_answers_as_the_images_script(tmp_path: Path, args: list[str], stdout: str, code: int) -> None:
    (tmp_path / "in.txt").write_text("line one\nline two\n")
    argv = [str(ARGOSAY), *(a.format(dir=tmp_path) for a in args)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    assert (done.stdout, done.returncode) == (stdout, code), done.stderr


def test_argosay_echo_to_a_file_makes_its_folder_and_ends_the_line(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.txt"
    subprocess.run([str(ARGOSAY), "echo", "hello", str(target)], check=True, timeout=10)
    assert target.read_text() == "hello\n"  # `echo "$2" > "$3"`: with its newline


# -- the images as their Dockerfiles make them --------------------------------------------------------------
@needs_bwrap
@needs_cowsay
@pytest.mark.parametrize(
    ("container", "result"),
    [
        # v2: /argosay is the ENTRYPOINT; args alone are its arguments; no args: "hello argo"
        ({"image": "argoproj/argosay:v2", "args": ["echo", "from args"]}, "from args"),
        ({"image": "argoproj/argosay:v2"}, "hello argo"),
        # /argosay is a file at that path in the node's root, found by a shell too (e2e hooks' templates)
        ({"image": "argoproj/argosay:v2", "command": ["sh", "-c"], "args": ["/bin/sleep 0; /argosay echo by-path"]}, "by-path"),
        ({"image": "argoproj/argosay:v2", "command": ["/argosay"], "args": ["echo", "by-command"]}, "by-command"),
        # cowsay is on the PATH of v1, v2 and docker/whalesay (ENV PATH $PATH:/usr/games)
        ({"image": "argoproj/argosay:v2", "command": ["cowsay"], "args": ["moo"]}, "< moo >"),
        ({"image": "argoproj/argosay:v1", "command": ["sh", "-c"], "args": ["cowsay hello"]}, "< hello >"),
        ({"image": "docker/whalesay:latest", "command": ["cowsay"], "args": ["hello world"]}, "< hello world >"),
        # args without a command replace v1's CMD (cowsay)
        ({"image": "argoproj/argosay:v1", "args": ["echo", "plain"]}, "plain"),
        # v1 has no /argosay
        (
            {"image": "argoproj/argosay:v1", "command": ["sh", "-c"], "args": ["test -e /argosay && echo has || echo none"]},
            "none",
        ),
    ],
)
def test_mapped_images_offer_what_the_real_images_offer(engine_settings: Settings, container: dict, result: str) -> None:
    run = run_workflow(wf(container), engine_settings)
    node = run.node(run.name)
    assert (run.phase, node.phase) == ("Succeeded", "Succeeded"), node.message
    assert result in node.outputs["result"]


@needs_cowsay
def test_v1_without_command_or_args_runs_its_cmd(engine_settings: Settings) -> None:
    run = run_workflow(wf({"image": "argoproj/argosay:v1"}), engine_settings)
    assert run.phase == "Succeeded" and "(oo)" in run.node(run.name).outputs["result"]  # cowsay's cow


def test_without_the_sandbox_a_command_naming_an_image_file_runs_its_host_file(engine_settings: Settings) -> None:
    s = replace(engine_settings, engine=replace(engine_settings.engine, sandbox="none"))
    run = run_workflow(wf({"image": "argoproj/argosay:v2", "command": ["/argosay"], "args": ["echo", "unisolated"]}), s)
    assert run.phase == "Succeeded" and run.node(run.name).outputs["result"] == "unisolated"


@needs_bwrap
def test_a_mapping_can_give_an_image_files_path_and_entrypoint(engine_settings: Settings, tmp_path: Path) -> None:
    tool = tmp_path / "greet"
    tool.write_text('#!/bin/sh\necho "greetings, $1"\n')
    tool.chmod(0o755)
    s = with_map(
        engine_settings, **{"myorg/greeter": f"shell;/opt/greeter/bin/greet={tool};path=/opt/greeter/bin;entrypoint=greet"}
    )
    run = run_workflow(wf({"image": "myorg/greeter:1.0", "args": ["world"]}), s)
    assert run.phase == "Succeeded" and run.node(run.name).outputs["result"] == "greetings, world"
    run = run_workflow(wf({"image": "myorg/greeter:1.0", "command": ["sh", "-c"], "args": ["greet shell"]}), s)
    assert run.phase == "Succeeded" and run.node(run.name).outputs["result"] == "greetings, shell"
    assert not Path("/opt/greeter").exists()  # bound into the node's root, never made on this machine


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("python", Image("python", cmd=("python3",))),
        ("shell;path=/usr/games:/opt/bin", Image(cmd=("sh",), path=("/usr/games", "/opt/bin"))),
        ("shell;cmd=cowsay hi;tool=cowsay", Image(cmd=("cowsay", "hi"), tools=(("cowsay", "cowsay"),))),
        ("/usr/bin/env", Image("/usr/bin/env", entrypoint=("/usr/bin/env",))),
        ("shell;/argosay=/opt/twin;entrypoint=/argosay;tool=fortune:fortune-mod", None),
        # the server images' vocabulary: a tool run by this machine's program, VOLUME folders, EXPOSEd ports
        (
            "shell;tool=nc:busybox:/bin/busybox;private=/var/lib/db:/data;port=8086;port=8088",
            Image(
                cmd=("sh",),
                tools=(("nc", "busybox"),),
                providers=(("nc", "/bin/busybox"),),
                private=("/var/lib/db", "/data"),
                ports=(8086, 8088),
            ),
        ),
    ],
)
def test_image_map_entries_parse(value: str, expected: Image | None) -> None:
    img = parse_image(value, "x")
    if expected is not None:
        assert img == expected
    else:
        assert img.files == (("/argosay", "/opt/twin"),) and img.entrypoint == ("/argosay",)
        assert img.tools == (("fortune", "fortune-mod"),)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("java", "unknown runtime 'java'"),
        ("shell;speed=fast", "unknown option 'speed'"),
        ("shell;path", "no value"),
        ("shell;port=http", "port 'http' is not a number"),
    ],
)
def test_bad_image_map_entries_say_what_to_write(value: str, error: str) -> None:
    with pytest.raises(SetupError, match=error):
        parse_image(value, "x")


def test_the_builtin_table_follows_the_dockerfiles() -> None:
    v1, v2 = image_of("argoproj/argosay:v1", {}), image_of("quay.io/argoproj/argosay:v2", {})
    assert (v1.cmd, v1.entrypoint, v1.path) == (("cowsay",), (), ("/usr/games",))
    # ENTRYPOINT in v2 drops the CMD it inherits from v1
    assert (v2.cmd, v2.entrypoint, v2.files) == ((), ("/argosay",), (("/argosay", str(ARGOSAY)),))
    assert image_of("docker/whalesay", {}) == v1


def test_a_tool_the_image_offers_and_this_machine_lacks_is_refused_naming_its_package(engine_settings: Settings) -> None:
    s = with_map(engine_settings, **{"myorg/fortune": "shell;tool=no-such-fortune-xyz:fortune-mod"})
    manifest = wf({"image": "myorg/fortune", "command": ["sh", "-c"], "args": ["no-such-fortune-xyz | head -1"]})
    with pytest.raises(ImageNotMapped, match=r"no-such-fortune-xyz.*apt-get install fortune-mod"):
        prepare_run(manifest, s)
    run = run_workflow(wf({"image": "myorg/fortune", "command": ["echo"], "args": ["unused tool"]}), s)
    assert run.phase == "Succeeded"  # a workflow that does not use it runs


# -- a command that is not in the image fails its node when it starts, as a pod ----------------------------
NOT_FOUND = 'failed to find name in PATH: exec: "invalid": executable file not found in $PATH'


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (["invalid"], NOT_FOUND),
        (["invalid", "command"], NOT_FOUND),
        (["exit", "1"], 'exec: "exit": executable file not found in $PATH'),  # a shell builtin is no executable
        (["/no/such/tool"], 'failed to find name in PATH: exec: "/no/such/tool": stat /no/such/tool: no such file or directory'),
        (["/etc"], 'exec: "/etc": is a directory'),
        (["/etc/passwd"], 'exec: "/etc/passwd": permission denied'),
    ],
)
@pytest.mark.parametrize("sandbox", ["auto", "none"])
def test_a_command_missing_from_the_image_fails_the_node_with_argos_message(
    engine_settings: Settings, command: list[str], error: str, sandbox: str
) -> None:
    s = replace(engine_settings, engine=replace(engine_settings.engine, sandbox=sandbox))
    run = run_workflow(wf({"image": "argoproj/argosay:v2", "command": command}), s)  # not refused up front
    node = run.node(run.name)
    assert (run.phase, node.phase) == ("Failed", "Failed")
    assert node.message is not None and node.message.startswith("main: Error (exit code 64): ") and error in node.message
    assert node.outputs["exitCode"] == "64"
    assert error in pod_log(s, run.name)  # the executor prints it to the container's log
    assert "executable file not found" in (run.message or "") or error in (run.message or "")


def test_a_missing_command_in_an_init_container_fails_the_pod_first(engine_settings: Settings) -> None:
    manifest = wf({"image": "busybox", "command": ["echo"], "args": ["main ran"]})
    manifest["spec"]["templates"][0]["initContainers"] = [{"name": "prep", "image": "busybox", "command": ["no-such-prep"]}]
    run = run_workflow(manifest, engine_settings)
    node = run.node(run.name)
    assert node.phase == "Failed"
    assert (
        node.message
        == 'prep: Error (exit code 64): failed to find name in PATH: exec: "no-such-prep": executable file not found in $PATH'
    )


def test_a_failing_command_says_which_container_as_argo_does(engine_settings: Settings) -> None:
    run = run_workflow(wf({"image": "argoproj/argosay:v2", "args": ["exit", "3"]}), engine_settings)
    assert run.node(run.name).message == "main: Error (exit code 3)"  # operator.go inferFailedReason


# -- the kubelet's $(VAR) -----------------------------------------------------------------------------------
K8S_ENV = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)", "VAR_EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [  # the cases of expand_test.go doExpansionTest
        ("$(VAR_A)", "A"),
        ("$(VAR_A)-$(VAR_A)", "A-A"),
        ("___$(VAR_B)___", "___B___"),
        ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
        ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
        ("$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
        ("f000-$$VAR_A", "f000-$VAR_A"),
        ("foo\\$(VAR_C)bar", "foo\\Cbar"),
        ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
        ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
        ("$(VAR_REF)", "$(VAR_A)"),
        ("foo$(VAR_EMPTY)bar", "foobar"),
        ("foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
        ("$?_boo_$!", "$?_boo_$!"),
        ("$VAR_A", "$VAR_A"),
        ("$(VAR_DNE)", "$(VAR_DNE)"),
        ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
        ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
        ("$$$$$$$(VAR_A)", "$$$A"),
        ("${VAR_A}", "${VAR_A}"),
        ("$(VAR_B)_______$(A", "B_______$(A"),
        ("$(VAR_C)_______$(", "C_______$("),
        ("$(VAR_A)foobarzab$", "Afoobarzab$"),
        ("--$($($($($--", "--$($($($($--"),
        ("$(foo$$var)", "$(foo$$var)"),
        ("$((1 + RANDOM % 10))", "$((1 + RANDOM % 10))"),  # a shell's arithmetic names no variable
    ],
)
def test_kubernetes_expansion(text: str, expected: str) -> None:
    assert expand(text, K8S_ENV) == expected


def test_env_values_refer_to_the_variables_before_them() -> None:  # expand_test.go TestMapReference
    assert expand_env([("FOO", "bar"), ("ZOO", "$(FOO)-1"), ("BLU", "$(ZOO)-2"), ("LATE", "$(NEXT)"), ("NEXT", "x")]) == {
        "FOO": "bar",
        "ZOO": "bar-1",
        "BLU": "bar-1-2",
        "LATE": "$(NEXT)",
        "NEXT": "x",
    }


def test_the_kubelet_expands_command_and_args_from_the_containers_env(engine_settings: Settings) -> None:
    container = {
        "image": "busybox",
        "command": ["echo", "$(GREETING)"],
        "args": ["$(WHO)", "$$(WHO)", "$(UNSET)", "$(ARGO_CONTAINER_NAME)"],
        "env": [{"name": "WHO", "value": "world"}, {"name": "GREETING", "value": "hello-$(WHO)"}],
    }
    run = run_workflow(wf(container), engine_settings)
    assert run.phase == "Succeeded"
    assert run.node(run.name).outputs["result"] == "hello-world world $(WHO) $(UNSET) main"
