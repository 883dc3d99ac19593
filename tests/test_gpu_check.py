"""``benchmarks/gpu_check.sh --dry-run``: every step of the GPU check, on the CPU at toy size."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from anobench.bench import load_benchmark
from anobench.objectives import list_objectives

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.sh"


def test_cuda_test_files_are_the_ones_that_skip_without_cuda():
    files = load_benchmark("gpu_check").cuda_test_files()
    assert {"tests/test_augment.py", "tests/test_knn.py", "tests/test_outliers.py"} <= set(files)


def test_a_failing_check_is_recorded_and_marks_the_table():
    gpu_check = load_benchmark("gpu_check")

    def broken():
        raise RuntimeError("no kernel")

    row = gpu_check.checked("broken", broken)
    assert row == {"check": "broken", "ok": False, "error": "RuntimeError: no kernel"}
    table = gpu_check.markdown({"device": "cpu", "torch": "x", "dry_run": True, "checks": [row]})
    assert "| broken | FAILED |" in table and "RuntimeError: no kernel" in table


def test_dry_run_runs_every_step_on_the_cpu_and_writes_json_and_table(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=480, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = {row["check"]: row for row in report["checks"]}
    assert report["dry_run"] and report["device"] == "cpu"
    for objective in list_objectives():
        assert rows[f"objective {objective} bf16"]["ok"] and rows[f"objective {objective} bf16"]["pipeline_img_s"] > 0
        assert rows[f"objective {objective} fp16"]["skipped"] == "fp16 needs CUDA"
    assert rows["preset quick"]["ok"] and rows["preset paper"]["model_img_s"] > 0
    assert [rows[f"packed quick x{n}"]["aggregate_img_s"] > 0 for n in (1, 2)] == [True, True]
    assert rows["exact kNN"]["identical"]
    assert rows["ddp nccl x2"]["ok"] is None and "two are needed" in rows["ddp nccl x2"]["skipped"]
    assert rows["CUDA-only tests (collected)"]["ok"] and "collected" in rows["CUDA-only tests (collected)"]["summary"]
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.startswith("GPU check on cpu") and "| objective firm bf16 | ok |" in table
    assert table == done.stdout
