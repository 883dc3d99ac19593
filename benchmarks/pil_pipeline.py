"""The conventional train augmentation: per-image PIL transforms in DataLoader workers.

The baseline :class:`anobench.augment.BatchAugmenter` is measured against, and the reference its
distribution tests compare with. Run as a script to print both rates:

    .venv/bin/python benchmarks/pil_pipeline.py --batch-size 512 --workers 2 [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from anobench.augment import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    AugmentRecipe,
    BatchAugmenter,
    augment_images_per_second,
)


def make_pil_transform(
    size: int = 32,
    mean: tuple[float, ...] = CIFAR10_MEAN,
    std: tuple[float, ...] = CIFAR10_STD,
) -> transforms.Compose:
    """The paper's train augmentation (docs/method.md §5) as a torchvision transform of one PIL image."""
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(size, scale=(0.25, 1.0), ratio=(1.0, 1.0)),
            transforms.ColorJitter(0.4, 0.4, 0.4, 0.4),
            transforms.RandomApply([transforms.GaussianBlur(3, sigma=(0.1, 2.0))], p=0.75),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


class _PilImages(Dataset):
    """``length`` items cycling over uint8 NHWC ``images``, each transformed as a PIL image."""

    def __init__(self, images: np.ndarray, length: int, transform: transforms.Compose) -> None:
        self.images = images
        self.length = length
        self.transform = transform

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(Image.fromarray(self.images[index % len(self.images)]))


def pil_augment_images_per_second(
    images_uint8_nhwc: np.ndarray | torch.Tensor,
    batch_size: int,
    workers: int = 2,
    batches: int = 8,
) -> float:
    """Images per second of the PIL pipeline through a DataLoader with ``workers`` processes.

    The first batch (which pays for starting the workers) is not timed; the next ``batches``
    batches are.
    """
    images = np.ascontiguousarray(torch.as_tensor(images_uint8_nhwc).numpy())
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"images have dtype {images.dtype} and shape {images.shape}; "
            "expected uint8 (N, H, W, C)"
        )
    dataset = _PilImages(images, batch_size * (batches + 1), make_pil_transform(images.shape[1]))
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    seen = sum(batch.shape[0] for batch in it)
    return seen / (time.perf_counter() - start)


def cpu_seconds_per_image(
    images_uint8_nhwc: np.ndarray, augmenter: BatchAugmenter
) -> dict[str, float]:
    """CPU time per image of each pipeline in this process, one torch thread, best of 3.

    Unlike wall-clock rates this barely moves when other jobs share the cores, so the ratio of
    the two is the speed-up to expect on an idle machine with as many cores as PIL workers.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        transform = make_pil_transform(images_uint8_nhwc.shape[1])
        nchw = torch.from_numpy(images_uint8_nhwc).permute(0, 3, 1, 2).contiguous()
        gen = torch.Generator().manual_seed(0)
        runs = {
            "pil": lambda: [transform(Image.fromarray(a)) for a in images_uint8_nhwc],
            "batched": lambda: augmenter(nchw, gen),
        }
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(3):
            for name, run in runs.items():
                start = time.process_time()
                run()
                best[name] = min(best[name], time.process_time() - start)
        return {name: seconds / len(images_uint8_nhwc) for name, seconds in best.items()}
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs; best is kept")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch_size, 32, 32, 3), dtype=np.uint8)
    augmenter = BatchAugmenter(AugmentRecipe(), 32, CIFAR10_MEAN, CIFAR10_STD)
    nchw = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    gen = torch.Generator().manual_seed(0)
    batched, pil = 0.0, 0.0
    # Interleaved so that both see the same load on a shared machine.
    for _ in range(args.rounds):
        batched = max(batched, augment_images_per_second(augmenter, nchw, gen, repeats=5))
        pil = max(
            pil,
            pil_augment_images_per_second(images, args.batch_size, args.workers, args.batches),
        )
    print(f"batched (torch, {torch.get_num_threads()} threads): {batched:,.0f} images/s")
    print(f"PIL + DataLoader ({args.workers} workers): {pil:,.0f} images/s")
    print(f"ratio: {batched / pil:.1f}x")
    cpu = cpu_seconds_per_image(images, augmenter)
    print(
        f"CPU time per image, one thread: batched {cpu['batched'] * 1e6:.1f} us, "
        f"PIL {cpu['pil'] * 1e6:.1f} us, ratio {cpu['pil'] / cpu['batched']:.1f}x"
    )


if __name__ == "__main__":
    main()
