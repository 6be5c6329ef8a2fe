"""Custom resources checked the way the Kubernetes API server checks them against their CRD.

``CrdSchema`` holds one version of a ``CustomResourceDefinition`` (its structural ``openAPIV3Schema``)
and ``admit(obj)`` does what the API server does with a create or update, in its order:

1. **decoding**: fields the schema does not declare are an ``unknown field`` error under strict field
   validation (what ``kubectl`` asks for) or are pruned (what other clients get); ``null`` is dropped
   where the field is not ``nullable``;
2. **defaulting**: ``default`` fills a missing field whose parent object exists;
3. **metadata**: name (DNS subdomain), ``generateName``, label keys and values, annotation keys and size;
4. **OpenAPI validation**: types (``x-kubernetes-int-or-string`` too), ``required``, ``enum``, ``pattern``,
   ``maxLength``/``minLength``, ``maxItems``/``minItems``, ``minimum``/``maximum``,
   ``x-kubernetes-list-type`` ``set``/``map`` uniqueness;
5. **CEL rules** (``x-kubernetes-validations``, evaluated with cel-python where ``self`` is the value at the
   rule's level; transition rules, which read ``oldSelf``, only on updates) — skipped, with the server's
   note, when step 4 found a type or enum error.

Messages are the API server's field errors (``spec.templates[0].name: Invalid value: "1a": spec.templates[0].name
in body should match '^[a-zA-Z0-9][-a-zA-Z0-9]*$'``). Follows kubernetes/apiextensions-apiserver:
``pkg/apiserver/schema/pruning``, ``pkg/apiserver/schema/defaulting``, ``pkg/apiserver/validation/validation.go``
(kube-openapi results to field errors), ``pkg/apiserver/schema/cel/validation.go`` (rule messages, ``oldSelf``),
``pkg/registry/customresource/strategy.go`` (``hasBlockingErr``), and apimachinery's ``ValidateObjectMeta``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SetupError

__all__ = ["LABEL_VALUE_RULE", "CrdInvalid", "CrdSchema", "FieldError", "is_label_value"]

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ANNOTATIONS_MAX_BYTES = 256 * 1024
LABEL_VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
"""Kubernetes' words for a bad label value (apimachinery ``validation.IsValidLabelValue``; at most 63 characters)."""


def is_label_value(value: object) -> bool:
    """Whether the API server accepts ``value`` as a label value (apimachinery ``validation.IsValidLabelValue``)."""
    return isinstance(value, str) and len(value) <= 63 and _LABEL_VALUE.match(value) is not None


_OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_BLOCKING = ("Unsupported value", "TypeInvalid")
"""Field errors that make the API server skip the CEL rules (``hasBlockingErr``)."""


@dataclass(frozen=True)
class FieldError:
    """One field error as the API server words it: ``path: kind: detail``."""

    path: str
    kind: str
    detail: str = ""
    rule: bool = False
    """Whether a CEL rule (``x-kubernetes-validations``) found it, rather than the structural schema."""

    def __str__(self) -> str:
        if self.kind == "unknown field":
            return self.detail
        kind = "Invalid value" if self.kind == "TypeInvalid" else self.kind
        where = self.path or "<nil>"
        return f"{where}: {kind}: {self.detail}" if self.detail else f"{where}: {kind}"


class CrdInvalid(Exception):
    """What the API server answers when ``admit`` refuses an object: HTTP ``status`` with ``reason`` and a message."""

    def __init__(self, status: int, reason: str, message: str, errors: list[FieldError]) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.errors = status, reason, message, errors


def _go(value: Any) -> str:
    """A value as the API server quotes it in ``Invalid value: …``."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _is(kind: str | None, value: Any) -> bool:
    if kind is None:
        return True
    if kind == "object":
        return isinstance(value, Mapping)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def _key(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_MACRO_VAR = re.compile(r"\bself\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_]\w*)\s*,")


def _reads(rule: str, var: str) -> dict[str, bool] | None:
    """The fields of ``var`` that ``rule`` reads, each with whether only its presence matters (``has(var.f)``);
    None when the rule uses ``var`` otherwise (indexing, passing it whole), so nothing may be left out."""
    rule = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", '""', rule)  # string literals read nothing
    fields: dict[str, bool] = {}
    for m in re.finditer(rf"(?<![\w.]){var}\b", rule):
        if re.search(r"\(\s*$", rule[: m.start()]) and re.match(r"\s*,", rule[m.end() :]):
            continue  # the macro's binding: self.all(t, ...)
        rest = rule[m.end() :]
        field = re.match(r"\s*\.\s*([A-Za-z_]\w*)\s*(\()?", rest)
        if field is None:
            return None
        name, call = field.group(1), field.group(2)
        if call:
            if var == "self" and name in ("all", "exists", "exists_one", "map", "filter"):
                continue  # a macro over a list: its variable's reads are projected per element
            return None
        presence = rule[: m.start()].rstrip().endswith("has(") and rest[field.end(1) :].lstrip().startswith(")")
        fields[name] = fields.get(name, True) and presence
    return fields


def _whole_macro(rule: str, macro: str) -> bool:
    """Whether ``rule`` is exactly ``self.<macro>(v, ...)`` (the call spans the whole rule)."""
    m = re.match(rf"\s*self\.{macro}\(", rule)
    if m is None:
        return False
    depth, quote = 1, ""
    for i in range(m.end(), len(rule)):
        ch = rule[i]
        if quote:
            quote = "" if ch == quote and rule[i - 1] != "\\" else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return rule[i + 1 :].strip() == ""
    return False


def _project(value: Any, reads: dict[str, bool] | None) -> Any:
    """What of ``value`` a rule can see: the fields it reads (a placeholder where only presence matters)."""
    if reads is None or not isinstance(value, Mapping):
        return value
    return {k: (True if reads[k] else value[k]) for k in reads if k in value}


class _Cel:
    """CEL programs of CRD rules (cel-python, the package index's CEL library), compiled once each.

    cel-python interprets, at several milliseconds per evaluation of Argo's rules, so results are remembered by
    rule and *what the rule can see*: only the fields it reads, and only the presence of those it reads solely
    through ``has()`` (``_reads``). Two templates of the same type are one evaluation of Argo's "at most one
    template type" rule; the result is the same as evaluating each in full."""

    _MEMO_MAX = 20000

    def __init__(self) -> None:
        try:
            import celpy  # the CEL evaluator (a dependency); imported on the first rule, not at import time
        except ImportError as err:  # pragma: no cover - a dependency of the package
            raise SetupError("cel-python is missing: CRD rules cannot be checked — pip install 'cel-python>=0.5,<0.6'") from err
        self._celpy = celpy
        self._env = celpy.Environment()
        self._programs: dict[str, tuple[Any, str | None, dict[str, bool] | None]] = {}
        self._memo: dict[tuple[str, str], tuple[bool, Any]] = {}

    def _program(self, rule: str) -> tuple[Any, str | None, dict[str, bool] | None]:
        entry = self._programs.get(rule)
        if entry is None:
            program = self._env.program(self._env.compile(rule))
            macro = _MACRO_VAR.search(rule)
            var = macro.group(1) if macro else None
            entry = self._programs[rule] = (program, var, _reads(rule, var) if var else None)
        return entry

    def run(self, rule: str, activation: dict[str, Any]) -> Any:
        """The rule's value for ``activation``; raises cel-python's error when evaluation fails."""
        program, var, element_reads = self._program(rule)
        value = activation.get("self")
        if set(activation) == {"self"} and isinstance(value, list) and var and _whole_macro(rule, "all"):
            # self.all(t, P) is P for every element: each element (as much as P sees of it) is one remembered
            # evaluation. CEL's `all` is false if any element is false, else an error if any errs, else true.
            results = [self._evaluate(rule, program, {"self": [_project(v, element_reads)]}) for v in value]
            if any(ok and result is not True and not bool(result) for ok, result in results):
                return False
            for ok, result in results:
                if not ok:
                    raise result
            return True
        view = dict(activation)
        if set(view) == {"self"} and isinstance(value, Mapping) and not var:
            view["self"] = _project(value, _reads(rule, "self"))
        ok, result = self._evaluate(rule, program, view)
        if not ok:
            raise result
        return result

    def _evaluate(self, rule: str, program: Any, view: dict[str, Any]) -> tuple[bool, Any]:
        key = (rule, json.dumps(view, sort_keys=True, default=str))
        hit = self._memo.get(key)
        if hit is None:
            try:
                hit = (True, program.evaluate({k: self._celpy.json_to_cel(v) for k, v in view.items()}))
            except Exception as err:  # cel-python's evaluation errors (no such key, no overload)
                hit = (False, err)
            if len(self._memo) >= self._MEMO_MAX:
                self._memo.clear()
            self._memo[key] = hit
        return hit

    @staticmethod
    def describe(err: Exception) -> str:
        """A cel-python error in the API server's words (``no such key: name``)."""
        args = getattr(err, "args", ())
        text = str(args[0]) if args else str(err)
        if m := re.match(r"no such member in mapping: '(.*)'", text):
            return f"no such key: {m.group(1)}"
        return text


_CEL: _Cel | None = None


def _cel() -> _Cel:
    """The process's CEL evaluator (building cel-python's parser takes about half a second)."""
    global _CEL
    if _CEL is None:
        _CEL = _Cel()
    return _CEL


class CrdSchema:
    """One served version of a CRD; ``admit`` checks an object as the API server would (module docstring)."""

    def __init__(self, crd: Mapping[str, Any], version: str | None = None, *, source: str = "") -> None:
        try:
            spec = crd["spec"]
            names = spec["names"]
            versions = list(spec["versions"])
            chosen = next(v for v in versions if (v["name"] == version if version else v.get("storage", len(versions) == 1)))
            self.schema: dict[str, Any] = chosen["schema"]["openAPIV3Schema"]
        except (KeyError, TypeError, StopIteration) as err:
            raise SetupError(f"{source or 'CRD'}: not a CustomResourceDefinition with an openAPIV3Schema ({err!r})") from err
        self.group: str = spec["group"]
        self.kind: str = names["kind"]
        self.plural: str = names["plural"]
        self.version: str = chosen["name"]
        self.namespaced = spec.get("scope", "Namespaced") == "Namespaced"
        self.subresources: dict[str, Any] = dict(chosen.get("subresources") or {})
        self.source = source

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def resource(self) -> str:
        """``Workflow.argoproj.io``: how the API server names the kind in its refusals."""
        return f"{self.kind}.{self.group}"

    # -- the whole admission -----------------------------------------------------------------------
    def errors(self, obj: Mapping[str, Any], *, strict: bool = True, old: Mapping[str, Any] | None = None) -> list[FieldError]:
        """Every field error of ``obj`` (after pruning or strict decoding, and defaulting), in the server's order.

        Unlike the server, which stops at a strict decoding error, the validation errors follow it (lint wants all)."""
        return self._admit(obj, strict=strict, old=old)[1]

    def admit(self, obj: Mapping[str, Any], *, strict: bool = False, old: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The object as the server would store it (pruned, defaulted); ``CrdInvalid`` when the server refuses it."""
        out, errors = self._admit(obj, strict=strict, old=old)
        if errors:
            unknown = [e for e in errors if e.kind == "unknown field"]
            if unknown:  # a strict decoding error comes before validation: 400 BadRequest
                fields = ", ".join(e.detail for e in unknown)
                raise CrdInvalid(
                    400,
                    "BadRequest",
                    f'{self.kind} in version "{self.version}" cannot be handled as a {self.kind}: strict decoding error: {fields}',
                    unknown,
                )
            name = (obj.get("metadata") or {}).get("name") or ""
            listed = "; ".join(map(str, errors)) if len(errors) == 1 else "[" + ", ".join(map(str, errors)) + "]"
            raise CrdInvalid(422, "Invalid", f'{self.resource} "{name}" is invalid: {listed}', errors)
        return out

    def _admit(
        self, obj: Mapping[str, Any], *, strict: bool, old: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], list[FieldError]]:
        data = copy.deepcopy(dict(obj))
        errors: list[FieldError] = []
        meta = data.get("metadata")
        if isinstance(meta, dict):
            for k in sorted(set(meta) - _OBJECT_META_FIELDS):
                if strict:
                    errors.append(FieldError(f"metadata.{k}", "unknown field", f'unknown field "metadata.{k}"'))
                del meta[k]
        body = {k: v for k, v in data.items() if k != "metadata"}
        body = self._prune(self.schema, body, "", errors, strict, root=True)
        body = self._default(self.schema, body)
        if meta is not None:
            body["metadata"] = meta
        data = {"apiVersion": data.get("apiVersion"), "kind": data.get("kind"), **body}
        data = {k: v for k, v in data.items() if v is not None or k not in ("apiVersion", "kind")}
        errors += _object_meta(data.get("metadata"), self.namespaced)
        schema_errors: list[FieldError] = []
        self._validate(self.schema, data, "", schema_errors, root=True)
        errors += schema_errors
        if any(e.kind in _BLOCKING for e in schema_errors):
            errors.append(
                FieldError(
                    "",
                    "Invalid value",
                    "null: some validation rules were not checked because the object was invalid; "
                    "correct the existing errors to complete validation",
                )
            )
        else:
            old_body = {k: v for k, v in (old or {}).items() if k != "metadata"} if old is not None else None
            self._rules(self.schema, {k: v for k, v in data.items() if k != "metadata"}, old_body, "", errors)
        return data, errors

    # -- 1. pruning / strict decoding ------------------------------------------------------------------
    def _prune(
        self, schema: Mapping[str, Any], value: Any, path: str, errors: list[FieldError], strict: bool, root: bool = False
    ) -> Any:
        if isinstance(value, Mapping):
            props = schema.get("properties")
            extra = schema.get("additionalProperties")
            keep_unknown = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
            embedded = bool(schema.get("x-kubernetes-embedded-resource"))
            out: dict[str, Any] = {}
            for key, item in value.items():
                sub: Mapping[str, Any] | None = None
                if props is not None and key in props:
                    sub = props[key]
                elif isinstance(extra, Mapping):
                    sub = extra
                elif (
                    ((root or embedded) and key in ("apiVersion", "kind", "metadata"))
                    or keep_unknown
                    or extra is True
                    or (props is None and extra is None and schema.get("type") != "object")
                ):
                    out[key] = item
                    continue
                if sub is None:
                    if strict:
                        errors.append(FieldError(_key(path, key), "unknown field", f'unknown field "{_key(path, key)}"'))
                    continue
                if item is None and not sub.get("nullable"):
                    continue  # the server drops a null it may not store (then defaults it)
                child = f"{path}[{key}]" if sub is extra else _key(path, key)
                out[key] = self._prune(sub, item, child, errors, strict)
            return out
        if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
            return [self._prune(schema["items"], v, f"{path}[{i}]", errors, strict) for i, v in enumerate(value)]
        return value

    # -- 2. defaulting ----------------------------------------------------------------------------------
    def _default(self, schema: Mapping[str, Any], value: Any) -> Any:
        if isinstance(value, dict):
            props = schema.get("properties") or {}
            for key, sub in props.items():
                if key not in value and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                if key in value:
                    value[key] = self._default(sub, value[key])
            extra = schema.get("additionalProperties")
            if isinstance(extra, Mapping):
                for key in [k for k in value if k not in props]:
                    value[key] = self._default(extra, value[key])
        elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
            return [self._default(schema["items"], v) for v in value]
        return value

    # -- 4. OpenAPI validation ---------------------------------------------------------------------------
    def _validate(self, schema: Mapping[str, Any], value: Any, path: str, errors: list[FieldError], root: bool = False) -> None:
        kind = schema.get("type")
        if value is None:
            if not schema.get("nullable"):
                errors.append(
                    FieldError(path, "TypeInvalid", f'"null": {path} in body must be of type {kind or "object"}: "null"')
                )
            return
        if schema.get("x-kubernetes-int-or-string"):
            if not (isinstance(value, str) or _is("integer", value)):
                errors.append(
                    FieldError(
                        path,
                        "TypeInvalid",
                        f'{_go(_type_of(value))}: {path} in body must be of type integer,string: "{_type_of(value)}"',
                    )
                )
                return
        elif not _is(kind, value):
            errors.append(
                FieldError(
                    path, "TypeInvalid", f'{_go(_type_of(value))}: {path} in body must be of type {kind}: "{_type_of(value)}"'
                )
            )
            return
        if "enum" in schema and value not in schema["enum"]:
            allowed = ", ".join(_go(v) for v in schema["enum"])
            errors.append(FieldError(path, "Unsupported value", f"{_go(value)}: supported values: {allowed}"))
        if isinstance(value, str):
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                errors.append(FieldError(path, "Too long", f"may not be more than {schema['maxLength']} bytes"))
            if "minLength" in schema and len(value) < schema["minLength"]:
                errors.append(
                    FieldError(
                        path, "Invalid value", f"{_go(value)}: {path} in body should be at least {schema['minLength']} chars long"
                    )
                )
            if "pattern" in schema and not re.search(schema["pattern"], value):
                errors.append(
                    FieldError(path, "Invalid value", f"{_go(value)}: {path} in body should match '{schema['pattern']}'")
                )
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                errors.append(
                    FieldError(
                        path, "Invalid value", f"{value}: {path} in body should be greater than or equal to {schema['minimum']}"
                    )
                )
            if "maximum" in schema and value > schema["maximum"]:
                errors.append(
                    FieldError(
                        path, "Invalid value", f"{value}: {path} in body should be less than or equal to {schema['maximum']}"
                    )
                )
        elif isinstance(value, list):
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                errors.append(FieldError(path, "Too many", f"{len(value)}: must have at most {schema['maxItems']} items"))
            if "minItems" in schema and len(value) < schema["minItems"]:
                errors.append(
                    FieldError(
                        path, "Invalid value", f"{len(value)}: {path} in body should have at least {schema['minItems']} items"
                    )
                )
            errors += _duplicates(schema, value, path)
            items = schema.get("items")
            if isinstance(items, Mapping):
                for i, item in enumerate(value):
                    self._validate(items, item, f"{path}[{i}]", errors)
        elif isinstance(value, Mapping):
            props = schema.get("properties") or {}
            for req in schema.get("required") or []:
                if req not in value:
                    errors.append(FieldError(_key(path, req), "Required value"))
            extra = schema.get("additionalProperties")
            for key, item in value.items():
                if root and key in ("apiVersion", "kind", "metadata") and (key == "metadata" or key not in props):
                    continue  # metadata: ObjectMeta's own checks
                if key in props:
                    self._validate(props[key], item, _key(path, key), errors)
                elif isinstance(extra, Mapping):
                    self._validate(extra, item, f"{path}[{key}]", errors)

    # -- 5. CEL rules -----------------------------------------------------------------------------------
    def _rules(self, schema: Mapping[str, Any], value: Any, old: Any, path: str, errors: list[FieldError]) -> None:
        if value is None:
            return
        for rule in schema.get("x-kubernetes-validations") or []:
            error = self._rule(rule, value, old, path or "<nil>")
            if error is not None:
                errors.append(error)
        if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
            olds = old if isinstance(old, list) and schema.get("x-kubernetes-list-type") != "map" else []
            for i, item in enumerate(value):
                self._rules(schema["items"], item, olds[i] if i < len(olds) else None, f"{path}[{i}]", errors)
        elif isinstance(value, Mapping):
            props = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            old_map = old if isinstance(old, Mapping) else {}
            for key, item in value.items():
                if key in props:
                    self._rules(props[key], item, old_map.get(key), _key(path, key), errors)
                elif isinstance(extra, Mapping):
                    self._rules(extra, item, old_map.get(key), f"{path}[{key}]", errors)

    def _rule(self, rule: Mapping[str, Any], value: Any, old: Any, path: str) -> FieldError | None:
        text = str(rule.get("rule", ""))
        transition = re.search(r"\boldSelf\b", text) is not None
        if transition and old is None and not rule.get("optionalOldSelf"):
            return None  # a transition rule: only checked on updates, against the stored value
        cel = _cel()
        where = str(rule.get("fieldPath") or "")
        where = f"{path}{where}" if where.startswith(("[", ".")) and path != "<nil>" else (where.lstrip(".") or path)
        kind = {
            "FieldValueForbidden": "Forbidden",
            "FieldValueRequired": "Required value",
            "FieldValueDuplicate": "Duplicate value",
        }
        error_kind = kind.get(str(rule.get("reason") or ""), "Invalid value")
        activation: dict[str, Any] = {"self": value}
        if transition:
            activation["oldSelf"] = old
        message = str(rule.get("message") or f"failed rule: {text}")
        try:
            ok = cel.run(text, activation)
        except Exception as err:  # cel-python raises its own error types for evaluation failures
            detail = f"{_go(_type_of(value))}: {_Cel.describe(err)} evaluating rule: {message}"
            return FieldError(where, "Invalid value", detail, rule=True)
        if ok is True or (not isinstance(ok, bool) and bool(ok)):
            return None
        if rule.get("messageExpression"):
            with contextlib.suppress(Exception):  # the server falls back to the static message when the expression fails
                message = str(cel.run(str(rule["messageExpression"]), activation)) or message
        return FieldError(where, error_kind, message, rule=True)


def _duplicates(schema: Mapping[str, Any], value: list[Any], path: str) -> list[FieldError]:
    """``x-kubernetes-list-type`` ``set`` (unique items) and ``map`` (unique ``x-kubernetes-list-map-keys``)."""
    kind = schema.get("x-kubernetes-list-type")
    if kind not in ("set", "map"):
        return []
    keys = list(schema.get("x-kubernetes-list-map-keys") or [])
    seen: set[str] = set()
    out = []
    for i, item in enumerate(value):
        ident = item if kind == "set" or not isinstance(item, Mapping) else {k: item.get(k) for k in keys}
        token = json.dumps(ident, sort_keys=True)
        if token in seen:
            out.append(FieldError(f"{path}[{i}]", "Duplicate value", _go(ident)))
        seen.add(token)
    return out


def _object_meta(meta: Any, namespaced: bool) -> list[FieldError]:
    """apimachinery's ``ValidateObjectMeta`` for custom resources (names are DNS subdomains)."""
    if not isinstance(meta, Mapping):
        return [FieldError("metadata.name", "Required value", "name or generateName is required")]
    out: list[FieldError] = []
    name, generate = meta.get("name"), meta.get("generateName")
    if not name and not generate:
        out.append(FieldError("metadata.name", "Required value", "name or generateName is required"))
    dns = (
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
        "and must start and end with an alphanumeric character"
    )
    if name and (not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.match(name)):
        out.append(FieldError("metadata.name", "Invalid value", f"{_go(name)}: {dns}"))
    if generate and not name:
        prefix = str(generate).rstrip("-") or "a"
        if not _DNS_SUBDOMAIN.match(prefix) or len(str(generate)) > 253 - 5:
            out.append(FieldError("metadata.generateName", "Invalid value", f"{_go(generate)}: {dns}"))
    labels = meta.get("labels") or {}
    if not isinstance(labels, Mapping):
        out.append(FieldError("metadata.labels", "TypeInvalid", f"{_go(_type_of(labels))}: must be a map of strings"))
        labels = {}
    for key, val in labels.items():
        out += _qualified_key("metadata.labels", str(key))
        if not is_label_value(val):
            out.append(
                FieldError(
                    "metadata.labels",
                    "Invalid value",
                    f"{_go(val)}: {LABEL_VALUE_RULE} (at most 63 characters)",
                )
            )
    annotations = meta.get("annotations") or {}
    if isinstance(annotations, Mapping):
        size = 0
        for key, val in annotations.items():
            out += _qualified_key("metadata.annotations", str(key))
            if not isinstance(val, str):
                out.append(FieldError(f"metadata.annotations[{key}]", "TypeInvalid", f"{_go(_type_of(val))}: must be a string"))
            size += len(str(key)) + len(str(val))
        if size > _ANNOTATIONS_MAX_BYTES:
            out.append(FieldError("metadata.annotations", "Too long", f"may not be more than {_ANNOTATIONS_MAX_BYTES} bytes"))
    if not namespaced and meta.get("namespace"):
        out.append(FieldError("metadata.namespace", "Forbidden", "not allowed on this type"))
    return out


def _qualified_key(path: str, key: str) -> list[FieldError]:
    prefix, _, name = key.rpartition("/")
    ok = (
        len(name) <= 63
        and bool(_QUALIFIED_NAME.match(name))
        and (not prefix or (len(prefix) <= 253 and bool(_DNS_SUBDOMAIN.match(prefix))))
    )
    if ok:
        return []
    return [
        FieldError(
            path,
            "Invalid value",
            f"{_go(key)}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
            "an alphanumeric character (at most 63 characters), with an optional DNS subdomain prefix and '/'",
        )
    ]
