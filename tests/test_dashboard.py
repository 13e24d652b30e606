"""NAS-Assist's predictions in optuna-dashboard, checked in a real headless browser.

A small study runs with :class:`NASAssistSampler` on a SQLite storage; optuna-dashboard
serves it on 127.0.0.1; headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by selenium) opens the trial list and must show each trial's NAS-Assist attributes
(``nasassist_predicted``, ``nasassist_uncertainty``, ``nasassist_prediction_scale``) with the
values in the storage. A screenshot is saved under ``test-artifacts/`` (git-ignored).

Skips with a reason when chromium, chromedriver, selenium or optuna-dashboard is missing,
unless ``NASASSIST_REQUIRE_BROWSER=1`` (CI installs them: a missing browser is a failure).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
USER_ATTRS = ("nasassist_predicted", "nasassist_uncertainty", "nasassist_prediction_scale")
_PAGE_TIMEOUT_S = 60


def _need(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("NASASSIST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"NASASSIST_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    _need(chromium is not None and driver is not None,
          "headless Chromium needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    for module in ("selenium", "optuna_dashboard"):
        try:
            __import__(module)
        except ImportError:
            _need(False, f"{module} is not installed (pip install -e '.[ecosystem]')")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"optuna-dashboard exited with status {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"optuna-dashboard did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _run_study(storage: str) -> list:
    import optuna
    import torch
    from torch import nn

    from nasassist_plugins.optuna import NASAssistSampler
    from nasassist_plugins.search import PlannerConfig

    def build_model(trial):
        width = trial.suggest_categorical("width", [4, 8, 16])
        kernel = trial.suggest_categorical("kernel", [1, 3])
        return nn.Sequential(nn.Conv2d(1, width, kernel, padding=kernel // 2), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))

    def objective(trial):
        model = build_model(trial)
        return 1.0 / (1.0 + sum(p.numel() for p in model.parameters()) / 1000.0)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = NASAssistSampler(build_model=build_model, example_input=torch.zeros(1, 1, 8, 8), seed=0,
                               config=PlannerConfig(min_candidates=4, max_candidates=4))
    study = optuna.create_study(storage=storage, study_name="dashboard-check", direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=3)
    return study.trials


@pytest.fixture()
def dashboard(tmp_path):
    """(url of the study's trial list, the study's trials) with optuna-dashboard serving them."""
    _browser_paths()
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    trials = _run_study(storage)
    port = _free_port()
    log = open(tmp_path / "dashboard.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys, optuna_dashboard; "
         "optuna_dashboard.run_server(sys.argv[1], host='127.0.0.1', port=int(sys.argv[2]))", storage, str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/dashboard/studies/1/trials", trials
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture()
def browser(tmp_path):
    """Headless Chromium through selenium, with a fresh profile and no network chatter."""
    chromium, driver_path = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1600", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path, log_output=str(tmp_path / "chromedriver.log")),
                              options=options)
    driver.set_page_load_timeout(_PAGE_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow  # ~1 min: a study, a server and a browser; CI runs it (no -m filter there)
def test_dashboard_shows_nasassist_predictions(dashboard, browser, png_content):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, trials = dashboard
    last = trials[-1]
    assert all(key in last.user_attrs for key in USER_ATTRS), last.user_attrs  # the sampler wrote them
    browser.get(url)
    body = lambda driver: driver.find_element(By.TAG_NAME, "body").text  # noqa: E731
    # the trial list opens on the first trial; pick the last one, then wait for its attributes
    WebDriverWait(browser, _PAGE_TIMEOUT_S).until(lambda d: "nasassist_predicted" in body(d))
    entries = browser.find_elements(By.XPATH, f"//*[normalize-space(text())='Trial {last.number}']")
    if entries:
        entries[0].click()
    WebDriverWait(browser, _PAGE_TIMEOUT_S).until(
        lambda d: f"Trial {last.number}" in body(d) and str(last.user_attrs["nasassist_prediction_scale"]) in body(d)
    )
    text = body(browser)
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "dashboard_trial.png"
    browser.save_screenshot(str(screenshot))
    for key in USER_ATTRS:
        assert key in text, f"{key} is not on the trial page"
    # the values on the page are the ones in the storage
    assert str(last.user_attrs["nasassist_prediction_scale"]) in text
    predicted = float(last.user_attrs["nasassist_predicted"])
    assert any(abs(float(token) - predicted) < 1e-6 for token in text.replace(",", " ").split()
               if token.replace(".", "", 1).replace("-", "", 1).replace("e", "", 1).isdigit()), predicted
    png_content(screenshot, min_width=1000, min_height=800)
