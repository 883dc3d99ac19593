"""`anobench ui`: the MLflow UI shows the runs and their AUROC in a real headless browser.

Needs Debian's chromium and chromium-driver (.ci/run installs them); without them the test is
skipped locally and fails in CI. The screenshot goes to $ANOBENCH_TEST_ARTIFACTS (default
test-artifacts/ in the repository) as an artifact of the test run.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from anobench.tracking import MlflowTracker
from anobench.ui import free_port, start_ui

ARTIFACTS = Path(os.environ.get("ANOBENCH_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        message = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)


def wait_for_text(driver, texts, timeout=90.0) -> str:
    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        body = driver.find_element("tag name", "body").text
        if all(t in body for t in texts):
            return body
        time.sleep(0.5)
    raise AssertionError(f"{texts} not all on the page; it shows: {body[:2000]!r}")


def test_ui_shows_the_runs_and_their_auroc(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "ui-check")
    names = []
    for objective, auroc in (("firm", 0.97), ("simclr", 0.91)):
        name = f"{objective}-digits-0-s0"
        tags = {"objective": objective, "scorers": "knn", "dataset": "digits", "normal_class": "0",
                "seed": "0", "preset": "smoke", "run_key": objective}
        with tracker.start_run(name, tags) as run:
            run.log_metrics({"auroc/knn": auroc}, step=20)
        names.append(name)
    client = tracker._client()
    experiment_id = tracker.experiment_id(client)

    driver = browser()
    try:
        with start_ui(uri, port=free_port()) as server:
            driver.get(f"{server.url}/#/experiments/{experiment_id}/runs")
            wait_for_text(driver, names)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / "mlflow_ui_experiment.png"))
            run_id = client.search_runs([experiment_id], "tags.objective = 'firm'")[0].info.run_id
            driver.get(f"{server.url}/#/experiments/{experiment_id}/runs/{run_id}")
            body = wait_for_text(driver, ["auroc/knn", "0.97"])
            driver.save_screenshot(str(ARTIFACTS / "mlflow_ui_run.png"))
    finally:
        driver.quit()
    assert "auroc/knn" in body
    assert (ARTIFACTS / "mlflow_ui_experiment.png").stat().st_size > 10_000
