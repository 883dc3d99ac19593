"""`anobench ui`: the MLflow UI shows the runs, their AUROC, a run's logged detector and the
registered detectors (`anobench register`) in a real headless browser.

Needs Debian's chromium and chromium-driver (.ci/run installs them); without them the test is
skipped locally and fails in CI. The screenshots go to $ANOBENCH_TEST_ARTIFACTS (default
test-artifacts/ in the repository) as artifacts of the test run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from anobench.errors import AnobenchError
from anobench.model_registry import register_detector
from anobench.tracking import MlflowTracker
from anobench.ui import check_port, free_port, port_holder, start_ui

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


def test_ui_shows_the_runs_their_auroc_and_the_detectors(tmp_path, logged_run):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "ui-check")
    client = tracker._client()
    names = []
    for objective, auroc in (("firm", 0.97), ("simclr", 0.91)):
        name = f"{objective}-digits-0-s0"
        tags = {"objective": objective, "scorers": "knn", "dataset": "digits", "normal_class": "0",
                "seed": "0", "preset": "smoke", "run_key": objective}
        with tracker.start_run(name, tags) as run:
            run.log_metrics({"auroc/knn": auroc}, step=20)
            if objective == "firm":  # a real detector's files as this run's model
                model = mlflow.artifacts.download_artifacts(f"runs:/{logged_run[1].run_id}/model",
                                                            dst_path=str(tmp_path), tracking_uri=logged_run[0])
                client.log_artifacts(run.run_id, model, "model")
        names.append(name)
    experiment_id = tracker.experiment_id(client)

    driver = browser()
    from selenium.webdriver.support.ui import WebDriverWait  # there is selenium: browser() skips without it

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
            # the run's artifacts know its model folder as an MLflow model: they offer to register it
            driver.get(f"{server.url}/#/experiments/{experiment_id}/runs/{run_id}/artifacts")
            WebDriverWait(driver, 90).until(lambda d: d.find_element(
                "css selector", '[data-testid="artifact-tree-node"][artifact-name="model"]')).click()
            wait_for_text(driver, ["MLmodel", "detector_entry.py", "Register model"])
            driver.save_screenshot(str(ARTIFACTS / "mlflow_ui_model.png"))
            version = register_detector(run_id, "ui-detector", uri)
            driver.get(f"{server.url}/#/models")
            wait_for_text(driver, ["Registered Models", "ui-detector", f"Version {version.version}"])
            driver.find_element("css selector", f'a[href="#/models/ui-detector/versions/{version.version}"]')
            driver.save_screenshot(str(ARTIFACTS / "mlflow_ui_registered_models.png"))
    finally:
        driver.quit()
    assert "auroc/knn" in body
    assert (ARTIFACTS / "mlflow_ui_experiment.png").stat().st_size > 10_000


class FakeMlflow(BaseHTTPRequestHandler):
    """Answers /version and /health as an MLflow server does."""

    def do_GET(self) -> None:
        body = {"/version": b"3.17.2", "/health": b"OK"}.get(self.path)
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args) -> None:
        pass


class OtherServer(FakeMlflow):
    def do_GET(self) -> None:
        self.send_response(404)
        self.end_headers()


@pytest.mark.parametrize(("handler", "expected"), [
    (FakeMlflow, "taken by another MLflow UI (MLflow 3.17.2"),
    (OtherServer, "taken by another web server (BaseHTTP"),
], ids=["mlflow-ui", "other-web-server"])
def test_a_taken_port_names_who_holds_it(handler, expected):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        with pytest.raises(AnobenchError) as error:
            check_port("127.0.0.1", port)
    finally:
        server.shutdown()
        server.server_close()
    assert expected in str(error.value) and f"pid {os.getpid()}" in str(error.value)
    assert "--port" in str(error.value)


def test_a_port_held_by_a_program_that_does_not_answer_http_is_named():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert port_holder(port).startswith(f"pid {os.getpid()} ")
        with pytest.raises(AnobenchError, match="a program that does not answer HTTP; held by pid"):
            check_port("127.0.0.1", port)
    check_port("127.0.0.1", port)  # free again


def test_sigterm_stops_the_ui_and_its_uvicorn_child(session_tracking_uri):
    MlflowTracker(session_tracking_uri).prepare()
    port = free_port()
    ui = subprocess.Popen([str(Path(sys.executable).parent / "anobench"), "ui", "--port", str(port)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, holder = time.monotonic() + 240, None
    while holder is None:
        assert ui.poll() is None and time.monotonic() < deadline, ui.stderr.read() if ui.poll() is not None else "no UI"
        time.sleep(0.5)
        holder = port_holder(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=60) as response:
        assert response.status == 200
    group = os.getpgid(int(holder.split()[1]))  # the server's own process group
    assert group != os.getpgid(ui.pid)
    ui.send_signal(signal.SIGTERM)
    _, stderr = ui.communicate(timeout=60)
    assert ui.returncode == 0 and "MLflow UI stopped (SIGTERM)" in stderr
    with pytest.raises(ProcessLookupError):  # no process of the server's group is left
        os.killpg(group, 0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
