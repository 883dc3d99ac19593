"""Run keys stay stable as settings are added: committed studies resume by key, and later
studies reuse earlier runs by key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from anobench.config import KEY_NEUTRAL_DEFAULTS, RunConfig, preset
from anobench.errors import ConfigError

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "cifar10-cpu" / "runs.csv"


def test_every_committed_run_keeps_its_key():
    """Each committed run's config, read back with settings added since taking their defaults,
    hashes to the run_key it was recorded under."""
    runs = pd.read_csv(COMMITTED).drop_duplicates("run_key")
    for _, row in runs.iterrows():
        assert RunConfig.from_dict(json.loads(row["config_json"])).key() == row["run_key"]


@pytest.mark.parametrize(("name", "value"), [("val_fraction", 0.1), ("val_outliers", "cutpaste"),
                                             ("target_fpr", 0.01)])
def test_a_key_neutral_setting_changes_the_key_away_from_its_default(name, value):
    base = RunConfig(objective="firm", scorers=["knn"], train=preset("smoke"))
    assert name in KEY_NEUTRAL_DEFAULTS
    assert dataclasses.replace(base, **{name: value}).key() != base.key()


def test_from_dict_round_trips_and_refuses_unknown_settings():
    config = RunConfig(objective="firm", scorers=["knn"], val_fraction=0.2, train=preset("smoke"))
    assert RunConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match=r"unknown run settings \['bogus', 'train.nope'\]"):
        RunConfig.from_dict({**config.to_dict(), "bogus": 1, "train": {**config.to_dict()["train"], "nope": 2}})


@pytest.mark.parametrize(("changes", "message"), [
    ({"val_fraction": 1.0}, "val_fraction must be in \\[0, 1\\), got 1.0"),
    ({"val_fraction": -0.1}, "val_fraction must be in \\[0, 1\\), got -0.1"),
    ({"target_fpr": 0.0}, "target_fpr must be in \\(0, 1\\), got 0.0"),
    ({"val_fraction": 0.1, "val_outliers": "rot90"}, "shares \\['rot90'\\] with the training outliers"),
])
def test_bad_validation_settings_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(objective="firm", scorers=["knn"], train=preset("smoke"), **changes)
