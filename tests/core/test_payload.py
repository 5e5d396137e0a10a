"""Payload validation: defaults, types, required fields, every problem at once."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from squidie_core import (
    COMPLETE,
    PayloadError,
    Workflow,
    field,
    manual,
    step,
    transition,
    validate_payload,
)
from squidie_core.errors import FieldError, TriggerNotFound


def noop(input: Any, ctx: Any) -> dict[str, Any]:
    return {}


class Order(Workflow):
    place = manual(
        sku=field(str),
        quantity=field(int, default=1),
        price=field(float),
        gift=field(bool, default=False),
        options=field(dict, default={}),
        tags=field(list, default=[]),
        deliver_at=field("datetime", default=None),
        ship_on=field(date, default=None),
    )
    handle = step(noop)
    transitions = [transition(handle, on="ok", to=COMPLETE)]


def test_defaults_applied_and_values_normalised() -> None:
    out = validate_payload(Order.definition(), "place", {"sku": "a-1", "price": 3})
    assert out == {"sku": "a-1", "quantity": 1, "price": 3.0, "gift": False, "options": {},
                   "tags": [], "deliver_at": None, "ship_on": None}
    assert isinstance(out["price"], float)


def test_mutable_defaults_are_copied() -> None:
    one = Order.validate_payload("place", {"sku": "a", "price": 1})
    one["tags"].append("x")
    two = Order.validate_payload("place", {"sku": "a", "price": 1})
    assert two["tags"] == []


def test_datetime_and_date_become_iso_strings() -> None:
    out = Order.validate_payload("place", {
        "sku": "a", "price": 1.5,
        "deliver_at": datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
        "ship_on": date(2026, 11, 25),
    })
    assert out["deliver_at"] == "2026-11-24T09:30:00+00:00"
    assert out["ship_on"] == "2026-11-25"
    out = Order.validate_payload("place", {"sku": "a", "price": 1, "ship_on": "2026-11-25"})
    assert out["ship_on"] == "2026-11-25"


def test_every_problem_reported_at_once() -> None:
    with pytest.raises(PayloadError) as info:
        Order.validate_payload("place", {
            "quantity": "two", "price": float("nan"), "gift": "yes", "options": [1],
            "tags": "a,b", "deliver_at": "tomorrow", "ship_on": "2026-13-40", "colour": "red",
        })
    err = info.value
    assert set(err.errors) == {
        FieldError("colour", "unknown field"),
        FieldError("sku", "required field is missing"),
        FieldError("quantity", "expected an integer"),
        FieldError("price", "expected a finite number"),
        FieldError("gift", "expected true or false"),
        FieldError("options", "expected a map (JSON object)"),
        FieldError("tags", "expected a list"),
        FieldError("deliver_at", "expected an ISO 8601 datetime string"),
        FieldError("ship_on", "expected an ISO 8601 date string (YYYY-MM-DD)"),
    }
    assert err.code == "payload_invalid" and isinstance(err, ValueError)
    assert "sku: required field is missing" in str(err)
    assert err.to_dict()["errors"][0].keys() == {"field", "problem"}


@pytest.mark.parametrize(
    ("name", "value"),
    [("quantity", True), ("quantity", 1.5), ("price", "1"), ("sku", 1), ("gift", 0),
     ("options", {"k": {1, 2}}), ("tags", [object()]), ("options", {1: "non-string key"})],
)
def test_type_errors(name: str, value: Any) -> None:
    payload = {"sku": "a", "price": 1.0, name: value}
    with pytest.raises(PayloadError) as info:
        Order.validate_payload("place", payload)
    assert [e.field for e in info.value.errors] == [name]


def test_integral_float_accepted_as_integer() -> None:
    assert Order.validate_payload("place", {"sku": "a", "price": 1, "quantity": 3.0})[
        "quantity"] == 3


def test_null_only_where_default_is_null() -> None:
    assert Order.validate_payload("place", {"sku": "a", "price": 1, "ship_on": None})[
        "ship_on"] is None
    with pytest.raises(PayloadError) as info:
        Order.validate_payload("place", {"sku": None, "price": 1})
    assert info.value.errors == [FieldError("sku", "may not be null")]


def test_payload_must_be_a_mapping() -> None:
    with pytest.raises(PayloadError):
        Order.validate_payload("place", ["sku"])  # type: ignore[arg-type]
    with pytest.raises(PayloadError) as info:
        Order.validate_payload("place", None)
    assert {e.field for e in info.value.errors} == {"sku", "price"}


def test_unknown_trigger() -> None:
    with pytest.raises(TriggerNotFound) as info:
        Order.validate_payload("plase", {})
    assert "did you mean 'place'" in str(info.value)
