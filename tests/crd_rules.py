"""Offline validation of custom resources against a CRD, as the API server does it.

kubernetes-validate checks built-in kinds only. For a TrainingRun this helper
does what the API server does on create/update, in the same order:
structural defaulting from the openAPIV3Schema ``default`` values,
schema validation (jsonschema, Draft 4 as OpenAPI 3.0 uses, with unknown
fields rejected the way ``kubectl apply``'s strict field validation does, and
duplicates in ``set`` lists refused as the server refuses them),
then the ``x-kubernetes-validations`` CEL rules evaluated with cel-python,
``self`` bound to each node (numbers typed by the schema, as Kubernetes
does: a ``number`` field is a CEL double even when written as ``0``) and
``oldSelf`` to the old object's node for transition rules.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[1]
CRD_PATH = REPO / "crds" / "trainingruns.zeroloop.io.yaml"


def load_crd(path: Path = CRD_PATH) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def version_schema(crd: dict[str, Any], version: str = "v1alpha1") -> dict[str, Any]:
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise KeyError(version)


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """A copy of value with the schema's defaults filled in (recursively, into defaults too)."""
    value = copy.deepcopy(value)
    _default_into(schema, value)
    return value


def _default_into(schema: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _default_into(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                if key not in (schema.get("properties") or {}):
                    _default_into(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default_into(schema["items"], item)


def _strict(schema: Any) -> Any:
    """The schema with unknown fields rejected where Kubernetes would prune or refuse them."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items() if k != "x-kubernetes-validations"}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if schema.get("x-kubernetes-list-type") == "set":  # the API server refuses duplicates
        out["uniqueItems"] = True
    return out


def schema_errors(schema: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """Schema violations of obj, each as 'path: message'."""
    validator = jsonschema.Draft4Validator(_strict(schema))
    out = []
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in err.absolute_path) or "<root>"
        out.append(f"{where}: {err.message}")
    return out


def _typed(schema: dict[str, Any], value: Any) -> Any:
    """value with `number` fields as floats, the way Kubernetes hands them to CEL."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else {}
        return {k: _typed(props.get(k, extra), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(schema.get("items") or {}, v) for v in value]
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


_ENV = celpy.Environment()


def _evaluate(rule: str, self_value: Any, old_value: Any) -> bool:
    program = _ENV.program(_ENV.compile(rule))
    activation = {"self": celpy.json_to_cel(self_value)}
    if old_value is not None:
        activation["oldSelf"] = celpy.json_to_cel(old_value)
    return bool(program.evaluate(activation))


def cel_rules(schema: dict[str, Any]) -> list[str]:
    """Every CEL rule in the schema (to check that each compiles)."""
    out = [r["rule"] for r in schema.get("x-kubernetes-validations") or []]
    for sub in (schema.get("properties") or {}).values():
        out += cel_rules(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            out += cel_rules(schema[key])
    return out


def cel_errors(schema: dict[str, Any], obj: Any, old: Any = None) -> list[str]:
    """Messages of the CEL rules obj breaks (transition rules only when old is given)."""
    out: list[str] = []
    _cel_walk(schema, _typed(schema, obj), None if old is None else _typed(schema, old), out)
    return out


def _cel_walk(schema: dict[str, Any], value: Any, old: Any, out: list[str]) -> None:
    for rule in schema.get("x-kubernetes-validations") or []:
        transition = "oldSelf" in rule["rule"]
        if transition and old is None:
            continue
        try:
            ok = _evaluate(rule["rule"], value, old if transition else None)
        except celpy.CELEvalError as e:
            ok = False
            out.append(f"rule {rule['rule']!r} failed to evaluate: {e}")
            continue
        if not ok:
            out.append(rule.get("message") or f"failed rule: {rule['rule']}")
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                old_sub = old.get(key) if isinstance(old, dict) else None
                _cel_walk(sub, value[key], old_sub, out)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _cel_walk(schema["items"], item, None, out)


def admit(obj: dict[str, Any], old: dict[str, Any] | None = None,
          crd: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """(the defaulted object, every error) for creating obj, or updating old to obj."""
    schema = version_schema(crd or load_crd())
    defaulted = apply_defaults(schema, obj)
    errors = schema_errors(schema, defaulted)
    if not errors:
        errors = cel_errors(schema, defaulted, None if old is None else apply_defaults(schema, old))
    return defaulted, errors
