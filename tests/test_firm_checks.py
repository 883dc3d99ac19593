"""benchmarks/firm_checks.py: the pipeline checks the CIFAR-10 study runs before trusting a result."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fakedata import write_cifar10

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "firm_checks.py"
CHECKS = ["batch composition", "outliers rotated before augmentation", "two independent views",
          "FIRM positive sets", "scorers use encoder features"]


@pytest.fixture()
def cifar_root(tmp_path):
    write_cifar10(tmp_path, n_train_per_class=20, n_test_per_class=2)
    return tmp_path


def load_script():
    spec = importlib.util.spec_from_file_location("firm_checks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(module, root, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["firm_checks.py", "--data-root", str(root), "--normal-class", "cat"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    return exit_info.value.code, capsys.readouterr().out


def test_every_check_passes_on_the_real_pipeline(cifar_root):
    done = subprocess.run([sys.executable, str(SCRIPT), "--data-root", str(cifar_root), "--normal-class", "cat"],
                          check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == [f"PASS  {name}" for name in CHECKS]
    assert "64 inliers + 192 outliers" in done.stdout and "(want 127)" in done.stdout


def test_wrong_positive_sets_fail(cifar_root, monkeypatch, capsys):
    module = load_script()
    real = module.get_objective
    monkeypatch.setattr(module, "get_objective", lambda name: real("supcon"))
    code, out = run_main(module, cifar_root, monkeypatch, capsys)
    assert code == 1
    assert "FAIL  FIRM positive sets" in out and "PASS  batch composition" in out


def test_scoring_the_projection_fails(cifar_root, monkeypatch, capsys):
    module = load_script()

    def embed_projection(model, images, transform, cfg, device):
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
            return model(transform(images))[1].float()

    monkeypatch.setattr(module, "embed", embed_projection)
    code, out = run_main(module, cifar_root, monkeypatch, capsys)
    assert code == 1
    assert "FAIL  scorers use encoder features" in out and "PASS  FIRM positive sets" in out
