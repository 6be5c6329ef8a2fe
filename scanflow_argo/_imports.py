"""``MODULE:ATTRIBUTE`` references, imported as ``python -m`` would: the current folder first on ``sys.path``
(a file of the current folder is a module too: ``flows/my_flow.py:w`` is ``flows.my_flow:w``).

Every command that takes such a reference (``compile``, ``lint``, ``run``, ``apply``, ``agent run``) goes
through ``import_ref``, so ``pipelines.mnist:app``, ``my_flow:w`` or ``agents.mnist:drift_supervisor``
resolve the same way everywhere, from the folder the command runs in, with no ``PYTHONPATH=.``.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any

from .errors import ScanflowError, SpecError

__all__ = ["import_ref", "project_dir_of"]


def import_ref(
    ref: str,
    *,
    default_attr: str | None = None,
    cwd: Path | None = None,
    error: type[ScanflowError] = SpecError,
    example: str = "pipelines.mnist:app",
) -> Any:
    """The object ``ref`` (``module[:attr[.attr…]]``) names; ``error`` (one line) says what is missing.

    ``default_attr`` is used when ``ref`` has no ``:ATTR``; without it the attribute is required.
    A ``pkg:name`` whose attribute is a submodule that defines ``name`` gives that (``pipelines:mnist``)."""
    module_name, _, attr = ref.partition(":")
    attr = attr or (default_attr or "")
    if not module_name or not attr:
        raise error(f"{ref!r}: expected MODULE:ATTRIBUTE, e.g. {example}")
    folder = str((cwd or Path.cwd()).resolve())
    if module_name.endswith(".py"):
        module_name = _module_of_file(module_name, Path(folder), error)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # like `python -m`: modules of the current folder are importable
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise error(
                f"cannot import module {module_name!r} (from {folder}): {err} — run from the project's folder or fix the name"
            ) from err
        raise error(f"cannot import module {module_name!r}: {err} — install the missing package") from err
    except ImportError as err:
        raise error(f"cannot import module {module_name!r}: {err}") from err
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            known = sorted(n for n in vars(obj) if not n.startswith("_")) if isinstance(obj, types.ModuleType) else []
            hint = f" (it has: {', '.join(known[:12])}{', …' if len(known) > 12 else ''})" if known else ""
            raise error(f"module {module_name!r} has no attribute {attr!r}{hint} — name it as MODULE:ATTRIBUTE")
        obj = getattr(obj, part)
        if isinstance(obj, types.ModuleType) and hasattr(obj, part):
            obj = getattr(obj, part)  # `pkg:app` where pkg/app.py defines `app`
    return obj


def _module_of_file(name: str, folder: Path, error: type[ScanflowError]) -> str:
    """The dotted module of a ``.py`` file under ``folder`` (``flows/my_flow.py`` → ``flows.my_flow``)."""
    path = (folder / name).resolve()
    if not path.is_file():
        raise error(f"{name}: no such file (from {folder})")
    try:
        parts = path.with_suffix("").relative_to(folder).parts
    except ValueError:
        raise error(f"{name} is outside the current folder {folder}: run from its project's folder") from None
    if not all(p.isidentifier() for p in parts):
        raise error(f"{name}: {'.'.join(parts)!r} is not a module name (folders and file need Python names)")
    return ".".join(parts)


def project_dir_of(module_name: str, default: Path) -> Path:
    """The folder the module's top-level package is imported from (``pipelines.mnist`` → the project root)."""
    file = getattr(sys.modules.get(module_name), "__file__", None)
    if not file:
        return default
    path, depth = Path(file).resolve(), len(module_name.split("."))
    return path.parents[depth] if path.name == "__init__.py" else path.parents[depth - 1]
