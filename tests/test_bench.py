"""Tests of the throughput benchmark (``anobench bench``) and the authors'-style baseline.

Only the plumbing is tested, on the smoke model with one step per measurement: the rates
themselves are benchmarks (docs/performance.md), not timed tests.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from anobench.bench import BenchConfig, load_benchmark, run_bench
from anobench.cli import app
from anobench.config import preset
from anobench.errors import ConfigError

TINY = {"train": preset("smoke"), "preset": "smoke", "n_normal": 48, "steps": 1, "repeats": 1,
        "warmup_steps": 1, "pil_workers": 0, "baseline_steps": 1, "device": "cpu"}


def test_run_bench_reports_consistent_rates():
    cfg = BenchConfig(**TINY)
    result = run_bench(cfg)
    for name in ("model_img_s", "pipeline_img_s", "augment_img_s", "pil_augment_img_s",
                 "epoch_s", "baseline_epoch_s", "peak_rss_mb"):
        value = getattr(result, name)
        assert value is not None and math.isfinite(value) and value > 0, name
    assert result.efficiency == pytest.approx(result.pipeline_img_s / result.model_img_s)
    # smoke: 16 samples, 4 inliers per step -> 12 steps for 48 normal images; baseline 48*4/32 = 6
    assert cfg.steps_per_epoch == 12 and cfg.baseline_steps_per_epoch == 6
    assert result.epoch_s == pytest.approx(12 * 2 * 16 / result.pipeline_img_s)
    assert result.speedup_vs_baseline == pytest.approx(result.baseline_epoch_s / result.epoch_s)
    assert result.settings["precision"] == "fp32" and result.settings["n_normal"] == 48


def test_run_bench_skips_what_it_is_told_to():
    result = run_bench(BenchConfig(**{**TINY, "augment": False, "baseline": False}))
    assert result.augment_img_s is None and result.pil_augment_img_s is None
    assert result.baseline_epoch_s is None and result.speedup_vs_baseline is None
    assert json.loads(json.dumps(result.to_dict()))["baseline_epoch_s"] is None


@pytest.mark.parametrize("change", [{"dataset": "digits"}, {"steps": 0}, {"repeats": 0},
                                    {"warmup_steps": -1}, {"n_normal": 0}])
def test_bench_config_rejects_bad_settings(change):
    with pytest.raises(ConfigError):
        BenchConfig(**{**TINY, **change})


def test_epoch_lengths_follow_the_quick_preset_and_the_paper_batch():
    cfg = BenchConfig()  # quick preset, CIFAR-10: 5000 normal images, 64 inliers per step
    assert cfg.steps_per_epoch == 79
    assert cfg.baseline_steps_per_epoch == 625  # 20,000 samples (1:3) / 32


def test_baseline_dataset_holds_the_rotations_as_entries():
    baseline = load_benchmark("baseline")
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    dataset = baseline.RotationSet(images, transform=lambda image: torch.tensor(0))
    assert len(dataset) == 20
    assert dataset.labels.tolist() == [0] * 5 + [-1] * 15
    assert dataset.generator_ids.tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    rot90 = torch.rot90(images, 1, dims=(2, 3)).permute(0, 2, 3, 1).numpy()
    assert (dataset.images[5:10] == rot90).all()  # the same rotation as the rot90 generator
    bcfg = baseline.baseline_config(preset("quick"))
    assert (bcfg.batch_size, bcfg.precision, bcfg.channels_last) == (32, "fp32", False)
    assert dataclasses.replace(bcfg, batch_size=256, precision="bf16", channels_last=True) == preset("quick")


def test_cli_bench_prints_one_json_line():
    # the augmentation and baseline timings are checked through run_bench above (they cost minutes
    # at the CLI's full 5000-image epoch)
    args = ["bench", "--preset", "smoke", "--device", "cpu", "--steps", "1", "--repeats", "1",
            "--warmup-steps", "0", "--workers", "0", "--no-augment", "--no-baseline", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.strip().splitlines()
    fields = json.loads(line)
    for name in ("model_img_s", "pipeline_img_s", "efficiency", "epoch_s", "peak_rss_mb"):
        assert fields[name] > 0, name
    for name in ("augment_img_s", "pil_augment_img_s", "baseline_epoch_s", "speedup_vs_baseline"):
        assert fields[name] is None, name
    assert fields["settings"]["preset"] == "smoke" and "malloc_tuned" in fields["settings"]
    assert "efficiency" in result.stderr  # the table


@pytest.mark.parametrize("args, word", [(["--dataset", "digits"], "digits"),
                                        (["--precision", "fp16"], "fp16"),
                                        (["--preset", "nope"], "nope")])
def test_cli_bench_bad_input_is_one_error_line(args, word):
    result = CliRunner().invoke(app, ["bench", "--preset", "smoke", "--device", "cpu", "--steps",
                                      "1", "--repeats", "1", "--no-augment", "--no-baseline", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and word in lines[0], result.stderr
