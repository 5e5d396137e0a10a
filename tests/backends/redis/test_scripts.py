"""The Lua scripts: documented headers, the return-code enum, loading and reloading."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from _redis_data import dispatch

from squidie_backends.redis import RedisStore
from squidie_backends.redis._scripts import SCRIPT_NAMES, Code, load_sources
from squidie_core.storage import Checkpoint, Fact

pytestmark = pytest.mark.redis

LUA = resources.files("squidie_backends.redis").joinpath("lua")
READ_ONLY = {"depth", "peek", "list_runs", "dead_letters", "read_run"}


def _text(name: str) -> str:
    return LUA.joinpath(f"{name}.lua").read_text("utf-8")


def test_every_lua_file_is_a_known_script() -> None:
    files = {p.name[:-4] for p in LUA.iterdir() if p.name.endswith(".lua")}
    assert files == set(SCRIPT_NAMES)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_header_documents_every_key_argument_and_reply(name: str) -> None:
    text = _text(name)
    lines = text.splitlines()
    header = list(lines[: next(i for i, ln in enumerate(lines)
                                        if ln.strip() and not ln.startswith(("--", "#!")))])
    body = "\n".join(ln for ln in lines if not ln.lstrip().startswith("--"))
    head = "\n".join(header)
    assert head.startswith(("#!lua flags=no-writes\n-- squidie: ", "-- squidie: "))
    assert "Returns:" in head
    documented: dict[str, set[int]] = {"KEYS": set(), "ARGV": set()}
    for kind, first, last in re.findall(r"(KEYS|ARGV)\[(\d+)(?:\s*\.\.\s*(\d+))?\]", head):
        documented[kind].update(range(int(first), int(last or first) + 1))
    for kind, index in re.findall(r"(KEYS|ARGV)\[(\d+)\]", body):
        assert int(index) in documented[kind], f"{name}.lua uses {kind}[{index}] undocumented"


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_read_only_scripts_say_so(name: str) -> None:
    assert _text(name).startswith("#!lua flags=no-writes") == (name in READ_ONLY)


def test_return_codes_match_the_lua_constants() -> None:
    common = LUA.joinpath("includes/common.lua").read_text("utf-8")
    found = dict(re.findall(r"^local (OK|REPLAYED|E_[A-Z_]+) = (-?\d+)$", common, re.M))
    names = {"OK": "OK", "REPLAYED": "REPLAYED", "E_LEASE_UNKNOWN": "LEASE_UNKNOWN",
             "E_LEASE_NOT_CURRENT": "LEASE_NOT_CURRENT", "E_LEASE_EXPIRED": "LEASE_EXPIRED",
             "E_APPEND_CONFLICT": "APPEND_CONFLICT", "E_RUN_TERMINAL": "RUN_TERMINAL",
             "E_IDEMPOTENCY": "IDEMPOTENCY_CONFLICT", "E_NEED_QUEUES": "NEED_QUEUES",
             "E_REINDEX": "REINDEX", "E_NOT_DEAD": "NOT_DEAD", "E_OTHER_HOME": "OTHER_HOME"}
    assert {names[k]: int(v) for k, v in found.items()} == {c.name: c.value for c in Code}


def test_includes_are_inlined_and_the_shebang_stays_first() -> None:
    sources = load_sources()
    assert not any(re.search(r"^--! include", src, re.M) for src in sources.values())
    assert sources["depth"].startswith("#!lua flags=no-writes\n")
    assert "local function push_ready" in sources["claim"]


def test_scripts_reload_after_the_server_forgets_them(store: RedisStore) -> None:
    store.enqueue([dispatch("r")])
    store._client.script_flush()
    [lease] = store.claim("w", lease_for=10)
    store.complete(lease)
    assert store.depth()["default"].visible == 0


def test_a_batch_read_reloads_its_script_after_the_server_forgets_it(
    store: RedisStore,
) -> None:
    """Several runs are read in one pipeline of ``read_run.lua`` calls; a call the server
    no longer knows is sent again alone, which loads the script."""
    notes = [Fact(seq=i, type="note", at=0.0, body={"i": i}) for i in (1, 2, 3)]
    for run_id in ("r1", "r2"):
        store.append(run_id, notes, expected_seq=0)
    store.write_checkpoint("r1", Checkpoint(seq=2, data="state at 2"))
    store._client.script_flush()
    got = store.read_runs({"r1": None, "r2": 1, "never": None})
    assert got["r1"] == (Checkpoint(seq=2, data="state at 2"), notes[2:])
    assert got["r2"] == (None, notes[1:])  # after a sequence: no checkpoint asked for
    assert got["never"] == (None, [])
