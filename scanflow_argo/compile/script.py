"""The Python source of a ``script`` template for a ``@step`` function.

Input parameters reach the function through environment variables (``SCANFLOW_IN_<name>``, set
from ``{{inputs.parameters.<name>}}``) — never pasted into the source, so no value can inject code.
Artifacts are local paths. The returned dict's declared keys are written to
``/tmp/outputs/parameters/<name>`` (strings as they are, everything else as JSON, so booleans read
``true``/``false`` in ``when`` expressions). Steps import project code (``from pipelines.mnist import
tasks``): the runtime image installs the project, and the local engine runs with it importable.
"""

from __future__ import annotations

from ..spec.step import OUTPUT_PARAM_DIR, Step

__all__ = ["env_name", "script_source"]

_PRELUDE = """import json
import os
import sys


def _scanflow_in(name, kind):
    raw = os.environ["SCANFLOW_IN_" + name]
    if kind == "str":
        return raw
    if kind == "bool":
        return raw.strip().lower() in ("true", "1", "yes")
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    return json.loads(raw)


def _scanflow_out(step, names, result):
    if len(names) == 1 and not isinstance(result, dict):
        result = {names[0]: result}
    os.makedirs("@OUT@", exist_ok=True)
    for name in names:
        if not isinstance(result, dict) or name not in result:
            sys.exit("step %s returned no value for its output %r (declared in outputs=)" % (step, name))
        value = result[name]
        with open(os.path.join("@OUT@", name), "w") as f:
            f.write(value if isinstance(value, str) else json.dumps(value))
    if not names and result is not None:
        print(json.dumps(result, default=str))
""".replace("@OUT@", OUTPUT_PARAM_DIR)


def env_name(param: str) -> str:
    """The environment variable carrying input parameter ``param`` into the script."""
    return "SCANFLOW_IN_" + param


def script_source(step: Step) -> str:
    """The whole script: helpers, the function (cleaned), and the call that maps inputs and outputs."""
    assert step.fn is not None
    fn_name = step.fn.__name__
    args = []
    mkdirs = []
    for name in step.arg_order:
        param = step.input(name)
        if param is not None:
            args.append(f"{name}=_scanflow_in({name!r}, {param.type_name!r})")
            continue
        art = next((a for a in [*step.artifacts_in, *step.artifacts_out] if a.name == name), None)
        if art is not None:
            args.append(f"{name}={art.path!r}")
            if art in step.artifacts_out:
                mkdirs.append(f"os.makedirs({art.path!r}, exist_ok=True)")
    outputs = [o.name for o in step.outputs]
    call = f"_scanflow_result = {fn_name}({', '.join(args)})"
    body = [*mkdirs, call, f"_scanflow_out({step.name!r}, {outputs!r}, _scanflow_result)"]
    return _PRELUDE + "\n\n" + step.source() + "\n\n\n" + "\n".join(body) + "\n"
