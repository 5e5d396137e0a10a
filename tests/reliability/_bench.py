"""An engine on each backend for in-process catalogue cases (bad input, security).

``bench`` (a fixture in ``conftest.py``) is parametrised over SQLite, PostgreSQL,
MariaDB, Redis and FoundationDB (simulator); each gets its own table prefix or key
namespace, removed afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from _harness import store_url_for

from conformance import check_history
from squidie_core import (
    COMPLETE,
    ManualClock,
    Squidie,
    StepContext,
    Workflow,
    approval_step,
    field,
    manual,
    step,
    transition,
)

BACKENDS = ["sqlite", "postgresql", "mysql", "redis", "fdb"]



def bump(input: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"n": int(input.get("n", 0)) + 1}


def not_json(input: Mapping[str, Any], ctx: StepContext) -> Any:
    return {"when": {1, 2}}  # a set is not JSON


class Good(Workflow, name="rel.Good"):
    go = manual(n=field(int, default=0), note=field(str, default=""))
    one = step(bump)
    two = step(bump)
    transitions = [transition(one, on="ok", to=two), transition(two, on="ok", to=COMPLETE)]


class BadOutput(Workflow, name="rel.BadOutput"):
    go = manual()
    s = step(not_json, retry=3)
    transitions = [transition(s, on="ok", to=COMPLETE)]


class Gate(Workflow, name="rel.Gate"):
    go = manual()
    ask = approval_step(output="approval")
    transitions = [transition(ask, on="ok", to=COMPLETE),
                   transition(ask, on="error", to=COMPLETE)]


class ChangingV1(Workflow, name="rel.Changing"):
    go = manual()
    first = step(bump)
    second = step(bump)
    transitions = [transition(first, on="ok", to=second),
                   transition(second, on="ok", to=COMPLETE)]


class ChangingV2(Workflow, name="rel.Changing"):
    """The same workflow name, redeployed without the step running runs wait for."""

    go = manual()
    first = step(bump)
    transitions = [transition(first, on="ok", to=COMPLETE)]


FLOWS = [Good, BadOutput, Gate, ChangingV1]


class Bench:
    """An engine on the backend under test, and how to reach its raw storage."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = url
        self.clock = ManualClock()
        self.engine = self.open(FLOWS)

    def open(self, flows: list[type[Workflow]]) -> Squidie:
        if self.backend == "fdb":
            from squidie_backends.fdb import open_store

            if not hasattr(self, "_fdb"):
                self._fdb = open_store("fdb+sim://", clock=self.clock)
            return Squidie(self._fdb, workflows=flows)
        if self.backend == "redis":
            return Squidie.from_url(self.url, workflows=flows)
        from squidie_backends.sql import SQLStore

        return Squidie(SQLStore(self.url, clock=self.clock), workflows=flows)

    def drain(self, engine: Squidie | None = None, limit: int = 50) -> None:
        engine = engine or self.engine
        for _ in range(limit):
            if engine.execute_next(owner_id="cat-worker", lease_for=30) is None:
                return

    def bystander(self) -> str:
        return self.engine.start(Good, None, {"n": 1}).run_id

    def assert_bystander_fine(self, run_id: str) -> None:
        self.drain()
        assert self.engine.load(run_id).status == "completed"
        check_history(self.engine.store, [run_id]).assert_ok()

    def corrupt_first_fact(self, run_id: str) -> None:
        """Hand-edit the run's first journal entry into something that is not JSON."""
        if self.backend == "redis":
            import redis

            client = redis.Redis.from_url(self.url.split("?")[0])
            ns = self.url.split("namespace=")[1].split("&")[0]
            (key,) = list(client.scan_iter(match=f"{ns}:*:j:{run_id}"))
            client.lset(key, 0, b"{not json")
            client.close()
        elif self.backend == "fdb":
            store = self.engine.store
            store.database.set(store.layout.fact(run_id, 1),  # type: ignore[attr-defined]
                               b"\x00{not json")
        else:
            import sqlalchemy as sa

            store = self.engine.store
            prefix = self.url.split("prefix=")[1].split("&")[0]
            with store._engine.begin() as conn:  # type: ignore[attr-defined]
                conn.execute(sa.text(f"UPDATE {prefix}facts SET body = :b "
                                     "WHERE run_id = :r AND seq = 1"),
                             {"b": "{not json", "r": run_id})

    def close(self) -> None:
        self.engine.close()




def bench_url(backend: str, base: str, name: str) -> str:
    return store_url_for(backend, base, name) if backend != "fdb" else base
