"""benchmarks/manifest.py: provenance of an experiment's results."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from test_leaderboard import AUROC, log_runs

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "manifest.py"


def test_manifest_records_commits_data_hashes_and_sweep(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_runs(uri, "m")
    data = tmp_path / "data"
    data.mkdir()
    (data / "data_batch_1").write_bytes(b"abc")
    sweep = tmp_path / "s.toml"
    sweep.write_text('experiment = "m"\n')
    done = subprocess.run([sys.executable, str(SCRIPT), "--experiment", "m", "--tracking-uri", uri, "--sweep", str(sweep),
                           "--data", str(data), "--output-dir", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out" / "m" / "manifest.json").read_text())
    assert manifest["finished_runs"] == len(AUROC)
    assert sum(manifest["anobench_commits"].values()) == len(AUROC)
    assert manifest["data"]["sha256"] == {"data_batch_1": hashlib.sha256(b"abc").hexdigest()}
    assert manifest["sweep_file"]["text"] == 'experiment = "m"\n'
    assert manifest["libraries"]["torch"] and manifest["machine"]["cpus"] >= 1


def test_manifest_missing_data_folder_is_an_error(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--experiment", "m", "--tracking-uri", "sqlite:///x.db",
                           "--sweep", "s.toml", "--data", str(tmp_path / "none")], capture_output=True, text=True)
    assert done.returncode == 1 and "data folder" in done.stderr and "does not exist" in done.stderr
