"""Typed run configuration and the training presets.

A :class:`RunConfig` fully describes one run; it is serialised into every result (MLflow params,
the config JSON artifact, the results CSV) and its :meth:`RunConfig.key` identifies the run.

Example:
    >>> cfg = RunConfig(objective="firm", scorers=["knn"], train=preset("smoke"))
    >>> cfg.train.inliers_per_batch, cfg.train.outliers_per_batch
    (4, 12)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from anobench.errors import ConfigError, UnknownNameError
from anobench.evaluation import build_scorers
from anobench.proxies import resolve_val_outliers
from anobench.scorers.registry import check_bank_size
from anobench.specs import check_type
from anobench.thresholds import DEFAULT_TARGET_FPR

Precision = Literal["fp32", "bf16", "fp16"]
MIN_WIDTH = 1 / 64
"""The narrowest ResNet-18: one channel in its first (64-channel at width 1) stage."""
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024
MAX_SEED = 2**63 - 1
"""Seeds are kept to int64, the range every store of results (CSV, MLflow, pandas) holds exactly."""
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
KEY_NEUTRAL_DEFAULTS: dict[str, Any] = {"val_fraction": 0.0, "val_outliers": None, "target_fpr": DEFAULT_TARGET_FPR}
"""Run settings added after run keys were first published (the label-free selection issue):
``RunConfig.key()`` leaves each out at its default, so earlier runs keep their keys."""


def check_field_types(config: Any) -> None:
    """Check every field of a config dataclass against its type annotation.

    Raises:
        ConfigError: Naming the field, the bad value and the expected type.
    """
    hints = typing.get_type_hints(type(config))
    for item in dataclasses.fields(config):
        check_type(item.name, getattr(config, item.name), hints[item.name])


@dataclass(frozen=True)
class TrainConfig:
    """Model, batch and optimisation settings of one training run.

    The budget is ``steps`` if set, else ``epochs``; one epoch draws every normal training image
    once as an inlier (``ceil(n_normal / inliers_per_batch)`` steps), the same amount of data as
    one epoch of the paper's 4x-enlarged set at a 1:3 ratio.

    Attributes:
        width: Width multiplier of the CIFAR ResNet-18 (1.0 = 11.2M parameters).
        head_hidden: Hidden width of the projection head.
        head_layers: Number of linear layers in the projection head.
        head_out: Output width of the projection head.
        batch_size: Samples per step, inliers and outliers together (each seen in two views).
        outlier_ratio: Outliers per inlier in every batch (3.0 = the paper's 1:3).
        epochs: Training length in epochs, used when ``steps`` is None.
        steps: Training length in optimiser steps; overrides ``epochs``.
        lr: Peak learning rate of the OneCycle schedule.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        warmup_fraction: Fraction of the steps spent warming up (OneCycle ``pct_start``).
        precision: "fp32", "bf16" (autocast, CPU and GPU) or "fp16" (autocast + grad scaling, GPU).
        channels_last: Use the channels-last memory format for the convolutions.
        compile: Wrap the model in ``torch.compile``.
        eval_batch_size: Batch size when embedding images for scoring.
    """

    width: float = 1.0
    head_hidden: int = 1024
    head_layers: int = 8
    head_out: int = 128
    batch_size: int = 32
    outlier_ratio: float = 3.0
    epochs: int = 2000
    steps: int | None = None
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 3e-4
    warmup_fraction: float = 0.01
    precision: Precision = "fp32"
    channels_last: bool = False
    compile: bool = False
    eval_batch_size: int = 512

    def __post_init__(self) -> None:
        check_field_types(self)
        positive = {
            "head_hidden": self.head_hidden,
            "head_layers": self.head_layers,
            "head_out": self.head_out,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "lr": self.lr,
            "eval_batch_size": self.eval_batch_size,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        if self.steps is not None and self.steps <= 0:
            raise ConfigError(f"steps must be > 0, got {self.steps}")
        if not self.width >= MIN_WIDTH:
            raise ConfigError(
                f"width must be >= {MIN_WIDTH} (1/64: one channel in the ResNet-18's narrowest, "
                f"64-channel stage), got {self.width}"
            )
        for name, value in {"outlier_ratio": self.outlier_ratio, "momentum": self.momentum,
                            "weight_decay": self.weight_decay}.items():
            if value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        if not 0 < self.warmup_fraction < 1:
            raise ConfigError(f"warmup_fraction must be in (0, 1), got {self.warmup_fraction}")
        if not self._holds_inlier_and_outlier(self.batch_size):
            raise ConfigError(
                f"batch_size {self.batch_size} is too small to hold an inlier and an outlier at "
                f"outlier_ratio {self.outlier_ratio}; use batch_size >= {self.minimum_batch_size()}"
            )

    @property
    def inliers_per_batch(self) -> int:
        """Inliers in each batch: batch_size / (1 + outlier_ratio), rounded."""
        return self._inliers(self.batch_size)

    @property
    def outliers_per_batch(self) -> int:
        """Outliers in each batch (the rest of the batch)."""
        return self.batch_size - self.inliers_per_batch

    def _inliers(self, batch_size: int) -> int:
        return int(round(batch_size / (1.0 + self.outlier_ratio)))

    def _holds_inlier_and_outlier(self, batch_size: int) -> bool:
        """At least one inlier, and at least one outlier unless the ratio is 0."""
        inliers = self._inliers(batch_size)
        return inliers >= 1 and (self.outlier_ratio == 0 or batch_size - inliers >= 1)

    def minimum_batch_size(self) -> int:
        """The smallest batch that holds at least one inlier and one outlier at this ratio
        (one inlier at ratio 0).

        Both counts grow monotonically with the batch, so a bisection finds it; the upper end
        leaves half a sample of slack to each rounding.
        """
        ratio = self.outlier_ratio
        low = 1
        high = math.ceil(max((1 + ratio) / 2, 1.5 * (1 + ratio) / ratio if ratio else 0)) + 1
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if self._holds_inlier_and_outlier(middle) else (middle + 1, high)
        return low

    def total_steps(self, n_normal: int) -> int:
        """Optimiser steps of the run for ``n_normal`` normal training images."""
        if self.steps is not None:
            return self.steps
        return self.epochs * -(-n_normal // self.inliers_per_batch)


PRESETS: dict[str, TrainConfig] = {
    # Seconds on a CPU: a tiny encoder, for tests and for checking a setup.
    "smoke": TrainConfig(
        width=0.125, head_hidden=64, head_layers=2, head_out=32, batch_size=16, steps=20,
        lr=0.05, precision="fp32", eval_batch_size=256,
    ),
    # The CPU default: quarter-width ResNet-18 with the paper's head, bf16, 64 inliers +
    # 192 rotation outliers per step, 100 steps (about 40 s on 2 cores), the paper's lr 0.01
    # (at 0.05 the FIRM training loss on CIFAR-10 stayed near its chance value, log(2N - 1)).
    "quick": TrainConfig(
        width=0.25, batch_size=256, steps=100, lr=0.01, precision="bf16", channels_last=True,
    ),
    # The paper's setting (docs/method.md §5): full ResNet-18, batch 32, 2000 epochs, fp32. For GPUs.
    "paper": TrainConfig(),
}


def preset(name: str) -> TrainConfig:
    """The training preset ``name``.

    Raises:
        UnknownNameError: If there is no such preset.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownNameError("preset", name, sorted(PRESETS)) from None


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run: what to train, on what data, how, and how to score.

    Attributes:
        objective: Registry name of the objective.
        scorers: Scorer specs ("knn", "knn:k=1", ...), each applied to the one trained encoder.
        objective_params: Constructor parameters of the objective (e.g. tau, mode).
        outliers: Outlier-generator spec ("rot90+rot180+rot270" = the paper's rotations;
            "oe" draws real images from ``oe_source``).
        oe_source: Outlier Exposure images: a dataset name (its training split, read from
            ``data_root``) or an image folder; needed when ``outliers`` uses "oe".
        dataset: Registry name of the dataset.
        data_root: Folder holding the dataset (None: ANOBENCH_DATA_ROOT or none needed).
        normal_class: The normal class, by index or name (one-class protocol).
        image_size: Side of the square images the model sees.
        preset: Name of the preset ``train`` came from (recorded; ``train`` is authoritative).
        seed: Seed of initialisation, batch sampling, outliers and augmentation.
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda" or "cuda:N".
        eval_checkpoints: K > 0 also measures test AUROC at steps 0, T/K, ..., (K-1)T/K of a
            T-step run, which with the final result give the AULC convergence curve;
            0 = only at the end. Never used to pick a checkpoint (docs/method.md §7).
        val_fraction: F in [0, 1): a fixed, seeded F of the normal training images is withheld
            from training (and from outlier generation) for validation and calibration only
            (docs/selection.md); 0 = none, and the proxies that need them are skipped.
        val_outliers: Generators of the synthetic anomalies of ``val_auroc``, disjoint from
            ``outliers`` (None: ``cutpaste+cutpaste-scar+scramble``, or the rotations when the
            training outliers use cut-paste or scramble).
        target_fpr: The false-positive rate α of the calibrated threshold.
        train: The resolved training settings.
    """

    objective: str
    scorers: list[str]
    objective_params: dict[str, Any] = field(default_factory=dict)
    outliers: str = "rot90+rot180+rot270"
    oe_source: str | None = None
    dataset: str = "digits"
    data_root: str | None = None
    normal_class: str | int = "0"
    image_size: int = 32
    preset: str = "smoke"
    seed: int = 0
    device: str = "auto"
    eval_checkpoints: int = 0
    val_fraction: float = 0.0
    val_outliers: str | None = None
    target_fpr: float = DEFAULT_TARGET_FPR
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        check_field_types(self)
        if not self.scorers:
            raise ConfigError("at least one scorer is needed")
        build_scorers(self.scorers)
        if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise ConfigError(f"image_size must be in {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE}, got {self.image_size}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"seed must be in 0..{MAX_SEED} (2**63 - 1), got {self.seed}")
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.device == "cpu":
            self.check_device_type("cpu")
        if self.eval_checkpoints < 0:
            raise ConfigError(f"eval_checkpoints must be >= 0, got {self.eval_checkpoints}")
        if self.train.steps is not None:
            self._check_eval_checkpoints(self.train.steps)
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0 < self.target_fpr < 1:
            raise ConfigError(f"target_fpr must be in (0, 1), got {self.target_fpr}")
        if self.val_fraction > 0:
            self.resolved_val_outliers()
        uses_oe = "oe" in (name.strip() for name in self.outliers.split("+"))
        if uses_oe != (self.oe_source is not None):
            raise ConfigError(
                "the 'oe' outlier generator needs an Outlier Exposure source (--oe-source), "
                f"and a source needs 'oe' in the outliers spec; got outliers {self.outliers!r}, "
                f"oe_source {self.oe_source!r}"
            )

    def check_data_size(self, n_normal: int) -> None:
        """Check the settings that the number of normal training images bounds: every scorer's
        neighbour count (the images are its bank) and ``eval_checkpoints`` (at most one per step).

        Raises:
            ConfigError: Naming the setting, its value and the largest valid value.
        """
        for spec, scorer in build_scorers(self.scorers).items():
            check_bank_size(spec, scorer, n_normal)
        self._check_eval_checkpoints(self.train.total_steps(n_normal))

    def check_device_type(self, device_type: str) -> None:
        """Check that the training precision runs on the device type ("cpu" or "cuda").

        Raises:
            ConfigError: For fp16 off CUDA.
        """
        if self.train.precision == "fp16" and device_type != "cuda":
            raise ConfigError(f"precision 'fp16' needs a CUDA device, got device {self.device!r}; use bf16 on the CPU")

    def _check_eval_checkpoints(self, total_steps: int) -> None:
        if self.eval_checkpoints > total_steps:
            raise ConfigError(
                f"eval_checkpoints must be at most the {total_steps} training steps, got {self.eval_checkpoints}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every setting, nested like the dataclasses."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The config as canonical JSON (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def resolved_val_outliers(self) -> str:
        """``val_outliers``, or its default for these training outliers, checked disjoint from them.

        Raises:
            ConfigError: If it shares a generator with ``outliers``.
        """
        return resolve_val_outliers(self.outliers, self.val_outliers)

    def key(self) -> str:
        """A 16-hex-digit hash of the fully resolved config; equal configs share a key.

        The settings of :data:`KEY_NEUTRAL_DEFAULTS` are left out at their defaults, so runs
        recorded before they existed keep their keys.
        """
        settings = self.to_dict()
        for name, default in KEY_NEUTRAL_DEFAULTS.items():
            if settings[name] == default:
                del settings[name]
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> RunConfig:
        """The config of ``to_dict()`` output (e.g. a run's ``config_json``); settings it lacks
        (recorded before they existed) take their defaults.

        Raises:
            ConfigError: For an unknown setting or a bad value.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        train_known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(settings) - known) + sorted(f"train.{k}" for k in set(settings.get("train", {})) - train_known)
        if unknown:
            raise ConfigError(f"unknown run settings {unknown}")
        return cls(**{**settings, "train": TrainConfig(**settings.get("train", {}))})

    def flat_params(self) -> dict[str, str]:
        """Every setting as a flat ``{dotted.name: str}`` dict (for MLflow params)."""
        out: dict[str, str] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict) and value:
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
            else:
                out[prefix] = json.dumps(value) if isinstance(value, (list, dict)) else str(value)

        walk("", self.to_dict())
        return out
