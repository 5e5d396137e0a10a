"""Strict JSON: the only encoding Squidie stores (nothing is ever pickled).

``json_problem`` refuses what ``json.dumps`` would silently change (non-string keys,
tuples turned into lists are accepted; NaN, sets, bytes and objects are not).
"""

from __future__ import annotations

import copy as _copy
import json
import math
from json.encoder import encode_basestring
from typing import Any, TypeVar, cast

_T = TypeVar("_T")

__all__ = ["copy", "dumps", "json_problem", "loads"]

_decoder = json.JSONDecoder()


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder built once. ``JSONEncoder.encode`` builds one per call (a closure, a
# markers dict, the encoder object), which was 40% of encoding a fact. Without markers
# a circular value is found by the recursion limit instead of the markers dict, and is
# reported as the same ``ValueError``; nothing is left behind by a failed encode.
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
#: By ``sort_keys``: the C encoder (``None`` without it) and the pure Python one.
_encoders: dict[bool, tuple[Any, json.JSONEncoder]] = {
    sort: (_c_encoder(None, _refuse, encode_basestring, None, ":", ",", sort, False, False)
           if _c_encoder is not None else None,
           json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                            sort_keys=sort))
    for sort in (False, True)
}


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    """Encode compactly (``sort_keys``: canonically, every object's keys in order);
    raises ``ValueError``/``TypeError`` for non-JSON values."""
    encode, fallback = _encoders[sort_keys]
    if encode is None:
        return fallback.encode(value)
    try:
        return "".join(encode(value, 0))
    except RecursionError:
        raise ValueError("Circular reference detected (or nested too deeply)") from None


def loads(text: str | bytes) -> Any:
    """Decode JSON text (bytes are read as UTF-8)."""
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode("utf-8")
    return _decoder.decode(text)


def copy(value: _T) -> _T:
    """A deep copy of JSON data: dicts and lists rebuilt, scalars shared.

    What the fold and the steps pass around is decoded JSON, for which this is several
    times cheaper than ``copy.deepcopy`` (no memo, no dispatch on type). Anything else
    (a tuple, an object a step returned before the check refuses it) is handed to
    ``copy.deepcopy``, so the result is always a copy that shares nothing mutable.
    """
    kind = type(value)
    if kind is dict:
        return cast(_T, {key: item if type(item) in _SCALARS else copy(item)
                         for key, item in cast(dict[str, Any], value).items()})
    if kind is list:
        return cast(_T, [item if type(item) in _SCALARS else copy(item)
                         for item in cast(list[Any], value)])
    if kind in _SCALARS:
        return value
    return _copy.deepcopy(value)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def json_problem(value: Any, path: str = "$", depth: int = 0) -> str | None:
    """Return why ``value`` is not plain JSON data, or ``None`` if it is.

    Accepts ``None``, booleans, integers, finite floats, strings, lists, tuples and dicts
    with string keys, nested at most 64 deep.
    """
    if depth > 64:
        return f"{path}: nested deeper than 64 levels"
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path}: {value} is not a finite number"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}: key {key!r} is not a string"
            problem = json_problem(item, f"{path}.{key}", depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = json_problem(item, f"{path}[{index}]", depth + 1)
            if problem:
                return problem
        return None
    return f"{path}: {type(value).__name__} is not JSON (use dicts, lists, str, numbers, bool)"
