"""Security basics: no pickle anywhere, secrets redacted before storage, identifiers
validated, and store credentials never in errors, logs or inspection output.
"""

from __future__ import annotations

import ast
import logging
import os
import subprocess
import traceback
from pathlib import Path

import pytest
from _bench import Bench, Gate, Good
from _harness import SQUIDIE, cleanup_store

from squidie_core import Squidie
from squidie_core.errors import InvalidArgument, SquidieError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["squidie_core", "squidie_backends", "conformance"]
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "shelve", "marshal", "dill", "cloudpickle",
                  "jsonpickle"}
PASSWORD = "Sq1d-s3cret-pw"


# --------------------------------------------------------------------------- no pickle


def _unsafe_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id == "__import__" and node.args and \
                isinstance(node.args[0], ast.Constant):
            names = [str(node.args[0].value)]
        elif isinstance(node, ast.Attribute) and node.attr in ("loads", "load") and \
                isinstance(node.value, ast.Name) and node.value.id in UNSAFE_MODULES:
            names = [node.value.id]
        found += [f"{path}:{node.lineno}: {n}" for n in names  # type: ignore[attr-defined]
                  if n.split(".")[0] in UNSAFE_MODULES]
    return found


def test_no_package_uses_pickle_or_its_relatives() -> None:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    assert len(files) > 50  # the scan really covers the packages
    offenders = [hit for path in files for hit in _unsafe_uses(path)]
    assert offenders == []


def test_the_scan_finds_a_pickle_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import pickle\nfrom shelve import open\nx = marshal.loads(b'')\n"
                     "import json\n")
    assert len(_unsafe_uses(probe)) == 3


# --------------------------------------------------------------------------- redaction


def test_secrets_in_metadata_never_reach_the_store(bench: Bench) -> None:
    secrets = {"password": PASSWORD, "nested": {"API-Key": PASSWORD + "-k",
                                                "list": [{"refresh_token": PASSWORD + "-r"}]},
               "Authorization": f"Bearer {PASSWORD}", "note": "visible"}
    run = bench.engine.start(Good, None, {}, metadata=secrets).run_id
    gate = bench.engine.start(Gate).run_id
    bench.drain()
    bench.engine.approve(gate, actor="ops", comment="fine", metadata={"db_password": PASSWORD})
    bench.drain()
    stored = "\n".join(f.to_json() for r in (run, gate) for f in bench.engine.store.read(r))
    assert "visible" in stored and "[REDACTED]" in stored
    assert PASSWORD not in stored
    shown = repr(bench.engine.inspect_run(run, include_history=True)) + \
        repr(bench.engine.inspect_run(gate, include_history=True))
    assert PASSWORD not in shown


# --------------------------------------------------------------------------- identifiers


@pytest.mark.parametrize("url", [
    "sqlite:///x.db?prefix=a;DROP TABLE t;--",
    "sqlite:///x.db?prefix=a b",
    "sqlite:///x.db?schema=x\"; DROP",
    "redis://127.0.0.1:6379/0?namespace=a b",
    "redis://127.0.0.1:6379/0?namespace=a}{b",
    "redis://127.0.0.1:6379/0?namespace=" + "n" * 200,
])
def test_store_identifiers_are_validated(url: str, tmp_path: Path) -> None:
    os.chdir(tmp_path)
    with pytest.raises(InvalidArgument):
        Squidie.from_url(url)


# --------------------------------------------------------------------------- credentials

UNREACHABLE = [
    f"postgresql://squidie:{PASSWORD}@127.0.0.1:1/db?connect_timeout=1&retry_attempts=1",
    f"mysql://squidie:{PASSWORD}@127.0.0.1:1/db?retry_attempts=1",
    f"redis://squidie:{PASSWORD}@127.0.0.1:1/0?retries=0&socket_connect_timeout=1",
]


def _everything_about(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


@pytest.mark.parametrize("url", UNREACHABLE, ids=["postgresql", "mysql", "redis"])
def test_credentials_stay_out_of_errors_and_logs_when_unreachable(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SquidieError) as info:
        engine = Squidie.from_url(url, workflows=[Good])
        try:
            engine.start(Good)
        finally:
            engine.close()
    assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value)
    # Chained driver exceptions are part of what a traceback shows.
    assert PASSWORD not in "".join(traceback.format_exception(info.value))
    assert PASSWORD not in caplog.text


def _real_url(backend: str, request: pytest.FixtureRequest, name: str) -> str:
    if backend == "postgresql":  # trust auth: the password is sent and ignored
        base = str(request.getfixturevalue("postgres_url"))
        return base.replace("postgres@", f"postgres:{PASSWORD}@") + f"?prefix={name}_"
    if backend == "mysql":  # root has no password: a password makes the login fail
        base = str(request.getfixturevalue("mysql_url"))
        return base.replace("root@", f"root:{PASSWORD}@") + f"?prefix={name}_"
    base = str(request.getfixturevalue("redis_url"))  # no requirepass: AUTH fails
    return base.replace("redis://", f"redis://default:{PASSWORD}@") + f"?namespace={name}"


@pytest.mark.parametrize("backend", ["postgresql", "mysql", "redis"])
def test_credentials_stay_out_of_output_against_real_services(
    backend: str, request: pytest.FixtureRequest, unique_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = _real_url(backend, request, unique_name)
    seen: list[str] = []
    try:
        engine = Squidie.from_url(url, workflows=[Good])
    except SquidieError as exc:  # refused login: the error must not echo the password
        seen.append(_everything_about(exc))
    else:
        try:
            run = engine.start(Good).run_id
            engine.execute_next(owner_id="sec", lease_for=30)
            seen += [repr(engine.store), str(engine.store), repr(engine.inspect_run(run)),
                     repr(engine.explain_run(run)), repr(engine.list_runs(limit=5)),
                     repr(engine.store.capabilities)]
        finally:
            engine.close()
            if backend == "redis":
                purge = url.split("?")[0].replace(f"default:{PASSWORD}@", "")
                cleanup_store(backend, url, purge, unique_name)
            else:
                cleanup_store(backend, url, url, unique_name)
    env = {**os.environ, "SQUIDIE_STORE": url}
    for args in (["status"],):
        out = subprocess.run([SQUIDIE, *args], env=env, capture_output=True, text=True,
                             timeout=60, check=False)
        seen.append(out.stdout + out.stderr)
    seen.append(caplog.text)
    leaks = [s for s in seen if PASSWORD in s]
    assert leaks == [], leaks[0][:2000] if leaks else ""
    assert any(seen), seen

