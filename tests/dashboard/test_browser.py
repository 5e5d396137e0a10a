"""End to end in headless Chromium: the real ``squidie dashboard`` and ``squidie worker``
processes on one SQLite file, driven through Selenium.

Opens the runs list, filters it, opens a run, checks its drawn graph, logs in with the
operator token, approves the waiting run and watches the page's live refresh show it
complete; the command history names the approver. A screenshot of the run page is saved
under ``build/screenshots/`` (gitignored). A payload built to run script is shown to the
operator without running.

Synchronisation is by polling the page (Selenium waits) and the API with deadlines, never
by sleeping. Chromium and chromedriver come from Debian (``make`` installs them); with
``CI=true`` a missing browser fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dash_flows
import pytest
from _helpers import free_port, until
from dash_support import TOKEN

from squidie_core import Squidie

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCREENSHOTS = ROOT / "build" / "screenshots"
SQUIDIE = str(Path(sys.executable).parent / "squidie")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
XSS_TITLE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
WAIT = 30.0


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    if not missing:
        return
    # Like a missing database: a failure with the fix, never a skip.
    pytest.fail(f"browser tests need {', '.join(missing)}; install with "
                "`apt-get install -y chromium chromium-driver` (make does this as root)",
                pytrace=False)




class Host:
    """The dashboard and worker subprocesses, their logs and the store they share."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.store = f"sqlite:///{workdir / 'e2e.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SQUIDIE_STORE": self.store, "SQUIDIE_APP": "dash_flows",
                    "SQUIDIE_DASHBOARD_TOKEN": TOKEN,
                    "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH",
                                                                             "")])}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str, *args: str) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (closed by the process)
        self.procs[name] = subprocess.Popen([SQUIDIE, *args], env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.workdir.glob("*.log")))

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read())

    def up(self) -> bool:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}\n{self.logs()}")
        try:
            return bool(self.api("/api/me")["writable"])
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    _need_browser()
    h = Host(tmp_path)
    subprocess.run([SQUIDIE, "install"], env=h.env, check=True, capture_output=True)
    h.spawn("dashboard", "dashboard", "--port", str(h.port), "--refresh", "0.4")
    h.spawn("worker", "worker", "--concurrency", "2", "--poll", "0.02", "--max-poll", "0.2",
            "--lease-for", "30")
    try:
        until(h.up, WAIT, "the dashboard to answer")
        yield h
    finally:
        h.stop()


@pytest.fixture
def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="squidie-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                "--window-size=1360,1500"):
        options.add_argument(arg)
    # The driver path is explicit, so selenium-manager never looks for (or downloads) one.
    monkeypatch.setenv("SE_OFFLINE", "true")
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "driver.log"))
    drv = webdriver.Chrome(service=service, options=options)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_filter_open_approve_and_watch_a_run_complete(host: Host, driver: Any) -> None:
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def wait(condition: Callable[[Any], Any], what: str) -> Any:
        # Live refresh swaps the page's content under the test: an element found just
        # before a swap is stale when read, so a condition is simply polled again.
        waiter = WebDriverWait(driver, WAIT, poll_frequency=0.1, ignored_exceptions=(
            NoSuchElementException, StaleElementReferenceException))
        try:
            return waiter.until(condition)
        except TimeoutException as exc:
            raise AssertionError(f"timed out waiting for {what}\n{host.logs()}") from exc

    with Squidie.from_url(host.store, workflows=dash_flows.WORKFLOWS) as engine:
        target = engine.start(dash_flows.Review, "submit", {"title": "launch"}).run_id
        hostile = engine.start(dash_flows.Review, "submit", {"title": XSS_TITLE}).run_id
        hold = engine.start(dash_flows.Hold, "go", {}).run_id

    def paused(run_id: str) -> bool:
        return bool(host.api(f"/api/runs/{run_id}")["run"]["status"] == "paused")

    until(lambda: paused(target) and paused(hostile) and paused(hold), WAIT,
          "the worker to bring both reviews to their approval")

    # The runs list, then filtered to the paused reviews.
    driver.get(host.url + "/")
    wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.run-row")) >= 5,
         "the runs list (2 reviews, their 2 children, the hold)")
    Select(driver.find_element(By.ID, "filter-workflow")).select_by_value("Review")
    Select(driver.find_element(By.ID, "filter-status")).select_by_value("paused")
    driver.find_element(By.ID, "apply").click()
    wait(lambda d: "status=paused" in d.current_url, "the filtered list")
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.run-row")
    assert {r.get_attribute("data-run-id") for r in rows} == {target, hostile}
    assert all(s.text == "paused" for s in driver.find_elements(By.CSS_SELECTOR,
                                                                "tr.run-row .status"))

    # Open the run: its graph is drawn, the approval is the current step.
    driver.find_element(By.CSS_SELECTOR, f'tr[data-run-id="{target}"] a.run-link').click()
    wait(lambda d: d.find_element(By.ID, "run-id").text == target, "the run page")
    graph = driver.find_element(By.CSS_SELECTOR, "#graph svg.graph")
    review = graph.find_element(By.CSS_SELECTOR, 'g[data-node="review"]')
    assert review.get_attribute("data-status") == "paused"
    assert "current" in (review.get_attribute("class") or "")
    prepare = graph.find_element(By.CSS_SELECTOR, 'g[data-node="prepare"]')
    assert prepare.get_attribute("data-status") == "completed"
    assert "2 attempts" in prepare.text  # the retry
    assert graph.find_elements(By.CSS_SELECTOR, "a.child-link")  # the child run's link
    assert driver.find_element(By.ID, "reason").text == "manual_intervention_required"
    assert driver.find_element(By.ID, "payload").text == "[hidden: operator only]"
    assert not driver.find_elements(By.ID, "action-approve")  # not an operator yet

    # Log in with the token, come back, approve.
    driver.find_element(By.ID, "login-link").click()
    driver.find_element(By.ID, "login-actor").send_keys("browser-bob")
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "login-submit").click()
    wait(lambda d: d.find_elements(By.CSS_SELECTOR, ".operator-badge"), "the login")
    driver.get(f"{host.url}/runs/{target}")
    assert '"title": "launch"' in driver.find_element(By.ID, "payload").text
    assert driver.find_element(By.ID, "actor").get_attribute("value") == "browser-bob"
    driver.find_element(By.ID, "comment").send_keys("looks good")
    driver.find_element(By.ID, "action-approve").click()
    wait(lambda d: d.find_elements(By.ID, "flash"), "the approval to be recorded")
    assert "approve recorded" in driver.find_element(By.ID, "flash").text

    # Watch it complete: the page refreshes itself while the worker runs the rest.
    wait(lambda d: d.find_element(By.CSS_SELECTOR, "h1 .status").text == "completed",
         "the live page to show the run completed")
    driver.find_element(By.ID, "live").click()  # hold the page still for the reads below
    assert driver.find_element(By.ID, "live").is_selected() is False
    graph = driver.find_element(By.CSS_SELECTOR, "#graph svg.graph")
    assert graph.find_element(By.CSS_SELECTOR, 'g[data-node="publish"]').get_attribute(
        "data-status") == "completed"
    assert graph.find_element(By.CSS_SELECTOR, 'g[data-edge="review:ok:publish"]'
                              ).get_attribute("class").split()[1] == "edge-selected"
    commands = driver.find_element(By.ID, "commands").text
    assert "approve" in commands and "browser-bob" in commands and "looks good" in commands
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / "run-page.png"))
    with Squidie.from_url(host.store, workflows=dash_flows.WORKFLOWS) as engine:
        approve = [c for c in engine.inspect_run(target)["commands"]
                   if c["command"] == "approve"]
    assert [(c["actor"], c["comment"]) for c in approve] == [("browser-bob", "looks good")]

    # A payload made to run script is shown as text to the operator, and runs nothing.
    driver.get(f"{host.url}/runs/{hostile}")
    wait(lambda d: d.find_element(By.ID, "run-id").text == hostile, "the hostile run")
    assert "window.__xss=2" in driver.find_element(By.ID, "payload").text
    assert driver.execute_script("return window.__xss === undefined") is True

    driver.get(host.url + "/")
    wait(lambda d: d.find_elements(By.CSS_SELECTOR, "tr.run-row"), "the runs list")
    assert driver.save_screenshot(str(SCREENSHOTS / "runs-list.png"))
