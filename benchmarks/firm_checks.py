"""Sanity checks of the FIRM pipeline on a real CIFAR-10 batch (issue: "look for bugs before
concluding"). Each check prints PASS or FAIL with the measured values; exit code 1 on a failure.

1. The batch the loss sees: inlier:outlier counts and the rotation mix of the outliers.
2. Outliers are made before augmentation: every uint8 outlier is an exact rot90/180/270 of a
   normal training image, and both views of it are augmented independently afterwards.
3. FIRM's positive sets on that batch (concat layout): every inlier anchor has the other inlier
   views as positives (2 x 64 - 1 = 127 with the quick preset), every outlier anchor exactly its
   own other view.
4. Scorers read the encoder features f(x), not the projection head's output.

    ANOBENCH_DATA_ROOT=/tmp/anodata python benchmarks/firm_checks.py --normal-class cat
"""

from __future__ import annotations

import argparse
import sys
from unittest import mock

import torch

from anobench.augment import CIFAR10_MEAN, CIFAR10_STD, AugmentRecipe, BatchAugmenter, test_transform
from anobench.batches import BatchComposer
from anobench.config import preset
from anobench.data import load_dataset, one_class_task
from anobench.models import ContrastiveModel
from anobench.objectives import OUTLIER_LABEL, get_objective, losses
from anobench.outliers import get_generator
from anobench.training import embed

failures: list[str] = []


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    if not ok:
        failures.append(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default=None, help="CIFAR-10 folder (default: $ANOBENCH_DATA_ROOT).")
    parser.add_argument("--normal-class", default="cat")
    args = parser.parse_args()
    cfg = preset("quick")
    task = one_class_task(load_dataset("cifar10", args.data_root, 32), args.normal_class)
    normals = task.train_images
    objective = get_objective("firm")
    outliers = get_generator("rot90+rot180+rot270")
    composer = BatchComposer(normals, cfg.inliers_per_batch, cfg.outliers_per_batch, outliers,
                             len(outliers.names), objective.recipe)
    generator = torch.Generator().manual_seed(0)
    batch = composer(generator)

    is_out = batch.labels == OUTLIER_LABEL
    n_in, n_out = int((~is_out).sum()), int(is_out.sum())
    mix = torch.bincount(batch.generator_ids[is_out]).tolist()
    check("batch composition", n_in == cfg.inliers_per_batch and n_out == cfg.outliers_per_batch,
          f"{n_in} inliers + {n_out} outliers (want {cfg.inliers_per_batch} + {cfg.outliers_per_batch}); "
          f"outliers per generator id {mix}")

    keys = {normals[i].numpy().tobytes() for i in range(len(normals))}
    matched = 0
    for image, gid in zip(batch.images[is_out], batch.generator_ids[is_out]):
        turns = int(outliers.names[int(gid) - 1].removeprefix("rot")) // 90
        matched += torch.rot90(image, -turns, dims=(1, 2)).contiguous().numpy().tobytes() in keys
    check("outliers rotated before augmentation", matched == n_out,
          f"{matched}/{n_out} uint8 outliers are exact rotations of normal training images")
    augmenter = BatchAugmenter(AugmentRecipe(), 32, CIFAR10_MEAN, CIFAR10_STD)
    views = augmenter(batch.images.repeat(2, 1, 1, 1), generator)
    n = len(batch.labels)
    differ = (views[:n] - views[n:]).flatten(1).abs().amax(dim=1) > 0
    check("two independent views", bool(differ.all()), f"{int(differ.sum())}/{n} samples have two different views")

    captured = {}

    def spy(z1, z2, positives, tau, mode, labels=None):
        captured["positives"] = positives
        return real(z1, z2, positives, tau, mode, labels=labels)

    real = losses.contrastive_loss
    z = torch.nn.functional.normalize(torch.randn(2, n, 8), dim=2)
    with mock.patch.object(losses, "contrastive_loss", spy):
        objective.loss(z[0], z[1], batch.labels)
    sample_pos = captured["positives"]
    # concat layout: an anchor's positives are both views of every positive sample, minus itself.
    per_anchor = 2 * sample_pos.sum(dim=1) - 1
    want_inlier = 2 * n_in - 1
    inlier_ok = bool((per_anchor[~is_out] == want_inlier).all())
    outlier_ok = bool((sample_pos[is_out].sum(dim=1) == 1).all() and sample_pos.diagonal()[is_out].all())
    check("FIRM positive sets", inlier_ok and outlier_ok,
          f"inlier anchors: {sorted(set(per_anchor[~is_out].tolist()))} positives (want {want_inlier}); "
          f"outlier anchors: {sorted(set(per_anchor[is_out].tolist()))} (want 1, their own view)")

    model = ContrastiveModel(cfg.width, cfg.head_hidden, cfg.head_layers, cfg.head_out).eval()
    images = normals[:16]
    transform = lambda x: test_transform(x, size=32, resize=36, mean=CIFAR10_MEAN, std=CIFAR10_STD)  # noqa: E731
    scored = embed(model, images, transform, cfg, torch.device("cpu"))
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        features = model.encoder(transform(images)).float()
        projection = model(transform(images))[1]
    check("scorers use encoder features", torch.allclose(scored, features, atol=1e-3)
          and not torch.allclose(scored, projection, atol=1e-2),
          f"embedded {tuple(scored.shape)} = encoder f(x) (max diff {float((scored - features).abs().max()):.1e}); "
          f"projection head output differs")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
