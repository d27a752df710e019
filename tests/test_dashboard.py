"""`nas dashboard`: optuna-dashboard on a real store, checked in a real headless Chromium.

The browser is Debian's chromium driven by its chromedriver through Selenium (.ci/run
installs both); without them the browser test is skipped, except where
NAS_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import default_sigint
from test_plots import arch_str, make_study

from nas.cli import main

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A dashboard served by `nas dashboard` on a store with a single- and a
    multi-objective study."""
    make_study("single", ["accuracy"])
    make_study("front", ["accuracy", "flops"])
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "nas", "dashboard", f"port={port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # Ctrl-C reaches it however the tests were started
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_served(url, server)
        yield url, server
    finally:
        server.kill()
        server.wait()


def _wait_until_served(url: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120  # a hang guard: it serves in about 2 s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"nas dashboard exited {server.returncode}: {server.stderr}")
        try:
            with urllib.request.urlopen(f"{url}/api/studies", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("nas dashboard did not serve within 120 s")


def _browser() -> object:
    if CHROMIUM is None or CHROMEDRIVER is None:
        if os.environ.get("NAS_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium and chromedriver are required (apt-get install chromium-driver)")
        pytest.skip("needs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1000")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _page_text(browser: object, url: str, expected: str) -> str:
    """The page's text once ``expected`` shows (the dashboard renders in the browser)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)  # type: ignore[attr-defined]
    body = browser.find_element(By.TAG_NAME, "body")  # type: ignore[attr-defined]
    WebDriverWait(browser, 60).until(lambda _: expected in body.text)
    return str(body.text)


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_the_dashboard_shows_the_studies_architectures_curves_and_front(
    dashboard: tuple[str, subprocess.Popen[str]],
) -> None:
    url, _ = dashboard
    browser = _browser()
    try:
        home = _page_text(browser, f"{url}/dashboard/", "front")
        assert "single" in home
        study_ids = {s["study_name"]: s["study_id"] for s in _studies(url)}
        front = _page_text(browser, f"{url}/dashboard/studies/{study_ids['front']}", "Pareto")
        assert "Learning curves of 'front'" in front  # the plot nas attached
        assert "flops" in front  # the objectives by name, not objective 1
        trials = _page_text(
            browser, f"{url}/dashboard/studies/{study_ids['front']}/trials", "User Attributes"
        )
        assert arch_str(0) in trials  # the first trial's architecture in its readable form
    finally:
        browser.quit()  # type: ignore[attr-defined]


def _studies(url: str) -> list[dict[str, object]]:
    import json

    with urllib.request.urlopen(f"{url}/api/studies", timeout=30) as response:
        return list(json.load(response)["study_summaries"])


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_ctrl_c_stops_the_dashboard_without_a_traceback(
    dashboard: tuple[str, subprocess.Popen[str]],
) -> None:
    _, server = dashboard
    server.send_signal(signal.SIGINT)
    _, err = server.communicate(timeout=60)
    assert server.returncode in (0, 130)
    assert "Traceback" not in err


def test_a_port_out_of_range_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dashboard", "port=70000"])
    _, err = capsys.readouterr()
    assert code == 2 and "port" in err and err.count("\n") == 1
