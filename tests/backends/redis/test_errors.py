"""The one boundary where redis-py exceptions become Squidie errors."""

from __future__ import annotations

import inspect

import pytest
import redis.exceptions as rx

from squidie_backends.redis._errors import MAPPING, map_errors, translate
from squidie_core.errors import BackendUnavailable, CorruptDataError, StoreError

pytestmark = pytest.mark.redis


def _redis_exceptions() -> list[type[BaseException]]:
    return [
        cls for _, cls in inspect.getmembers(rx, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__.startswith("redis")
    ]


def test_every_known_redis_exception_is_mapped() -> None:
    unmapped = [cls.__name__ for cls in _redis_exceptions() if cls not in MAPPING]
    assert unmapped == [], f"map these redis-py exceptions in _errors.MAPPING: {unmapped}"


@pytest.mark.parametrize("cls", _redis_exceptions(), ids=lambda c: c.__name__)
def test_every_exception_becomes_a_squidie_store_error(cls: type[BaseException]) -> None:
    try:
        exc = cls("1234 127.0.0.1:7000")  # cluster redirections parse "slot host:port"
    except TypeError:
        exc = cls()
    translated = translate(exc)
    assert isinstance(translated, StoreError)


@pytest.mark.parametrize(("exc", "expected"), [
    (rx.ConnectionError("Error 111 connecting"), BackendUnavailable),
    (rx.TimeoutError("Timeout reading"), BackendUnavailable),
    (rx.BusyLoadingError("loading"), BackendUnavailable),
    (rx.ReadOnlyError("READONLY replica"), BackendUnavailable),
    (rx.ResponseError("BUSY Redis is busy running a script"), BackendUnavailable),
    (rx.ResponseError("WRONGTYPE Operation against a key"), CorruptDataError),
    (rx.ResponseError("NOGROUP No such key"), CorruptDataError),
    (rx.ResponseError("ERR something else"), StoreError),
    (rx.OutOfMemoryError("OOM command not allowed"), StoreError),
])
def test_translation(exc: BaseException, expected: type[Exception]) -> None:
    assert type(translate(exc)) is expected


def test_corrupt_records_reported_by_scripts_name_the_record() -> None:
    exc = rx.ResponseError("SQUIDIE_CORRUPT dispatch record r:s:1 script: abc, on @user_script")
    err = translate(exc)
    assert isinstance(err, CorruptDataError) and "dispatch record r:s:1" in str(err)
    assert "script:" not in str(err)


def test_out_of_memory_says_what_to_do() -> None:
    assert "noeviction" in str(translate(rx.OutOfMemoryError("OOM")))


def test_map_errors_chains_and_scrubs_secrets() -> None:
    with pytest.raises(BackendUnavailable) as info, map_errors(["hunter2"]):
        raise rx.ConnectionError("cannot reach redis://:hunter2@host")
    assert "hunter2" not in str(info.value)
    assert isinstance(info.value.__cause__, rx.ConnectionError)


def test_squidie_errors_pass_through_untouched() -> None:
    with pytest.raises(CorruptDataError), map_errors():
        raise CorruptDataError("x", "y")
