"""Payload validation: defaults, types and required fields, every problem at once."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from squidie_core._definition import MISSING, WorkflowDefinition
from squidie_core.errors import FieldError, PayloadError

__all__ = ["FIELD_CHECKS", "check_value", "validate_payload"]


def _string(value: Any) -> tuple[Any, str | None]:
    return (value, None) if isinstance(value, str) else (value, "expected a string")


def _integer(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, None
    if isinstance(value, float) and value.is_integer():
        return int(value), None
    return value, "expected an integer"


def _float(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            return value, "expected a finite number"
        return float(value), None
    return value, "expected a number"


def _boolean(value: Any) -> tuple[Any, str | None]:
    return (value, None) if isinstance(value, bool) else (value, "expected true or false")


def _map(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, Mapping):
        return dict(value), None
    return value, "expected a map (JSON object)"


def _list(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, list | tuple):
        return list(value), None
    return value, "expected a list"


def _datetime(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, datetime):
        return value.isoformat(), None
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return value, "expected an ISO 8601 datetime string"
        return value, None
    return value, "expected an ISO 8601 datetime string"


def _date(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, datetime):
        return value, "expected a date, not a datetime"
    if isinstance(value, date):
        return value.isoformat(), None
    if isinstance(value, str):
        try:
            date.fromisoformat(value)
        except ValueError:
            return value, "expected an ISO 8601 date string (YYYY-MM-DD)"
        return value, None
    return value, "expected an ISO 8601 date string (YYYY-MM-DD)"


#: One check per field type: returns the normalised value and a problem (or ``None``).
FIELD_CHECKS: Mapping[str, Callable[[Any], tuple[Any, str | None]]] = {
    "string": _string,
    "integer": _integer,
    "float": _float,
    "boolean": _boolean,
    "map": _map,
    "list": _list,
    "datetime": _datetime,
    "date": _date,
}


def check_value(field_type: str, value: Any) -> tuple[Any, str | None]:
    """Check one value against a field type.

    Returns:
        The normalised value (ISO strings for datetimes and dates, floats for float
        fields) and a problem description, or ``None`` when the value fits.
    """
    value, problem = FIELD_CHECKS[field_type](value)
    if problem is None and field_type in ("map", "list"):
        from squidie_core._json import json_problem

        problem = json_problem(value)
    return value, problem


def validate_payload(
    definition: WorkflowDefinition, trigger: str, payload: Mapping[Any, Any] | None
) -> dict[str, Any]:
    """Apply a trigger's defaults and check its payload.

    Args:
        definition: The compiled workflow.
        trigger: The trigger name.
        payload: The payload given to ``start`` (``None`` means empty).

    Returns:
        A new dict: every declared field, defaults filled in, values normalised.

    Raises:
        TriggerNotFound: the workflow has no such trigger.
        PayloadError: listing every unknown, missing or mistyped field at once.
    """
    spec = definition.trigger(trigger)
    errors: list[FieldError] = []
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        raise PayloadError(
            definition.name, trigger, [FieldError("<payload>", "expected a map (JSON object)")]
        )
    result: dict[str, Any] = {}
    for key in payload:
        if not isinstance(key, str):
            errors.append(FieldError(repr(key), "field names must be strings"))
        elif key not in spec.fields:
            errors.append(FieldError(key, "unknown field"))
    for name, fspec in spec.fields.items():
        if name not in payload:
            if fspec.default is MISSING:
                errors.append(FieldError(name, "required field is missing"))
            else:
                result[name] = copy.deepcopy(fspec.default)
            continue
        value = payload[name]
        if value is None:
            if fspec.default is None:
                result[name] = None
            else:
                errors.append(FieldError(name, "may not be null"))
            continue
        normalised, problem = check_value(fspec.type, value)
        if problem:
            errors.append(FieldError(name, problem))
        else:
            result[name] = normalised
    if errors:
        raise PayloadError(definition.name, trigger, errors)
    return result
