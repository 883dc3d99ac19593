"""Conversion of decoded pixel arrays into the (N, 3, S, S) uint8 tensors every loader returns."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Images resized per interpolate call: bounds the float32 working copy to a few hundred MB.
_CHUNK = 1024


def to_image_tensor(pixels: np.ndarray, image_size: int) -> torch.Tensor:
    """Turn decoded uint8 pixels into an (N, 3, S, S) uint8 RGB tensor.

    Images whose side differs from ``image_size`` are resized with antialiased bilinear
    interpolation (non-square images are stretched to a square); grey images are replicated
    to three channels after resizing.

    Args:
        pixels: (N, H, W) grey or (N, C, H, W) with C = 1 (grey) or 3 (RGB), uint8.
        image_size: Side S of the square output images.

    Returns:
        A contiguous (N, 3, S, S) uint8 tensor (it may share memory with ``pixels``).

    Raises:
        ValueError: If ``pixels`` is not uint8 or has an unsupported shape.
    """
    if pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {pixels.dtype}")
    if pixels.ndim == 3:
        pixels = pixels[:, None]
    if pixels.ndim != 4 or pixels.shape[1] not in (1, 3):
        raise ValueError(f"pixels must be (N, H, W) or (N, 1|3, H, W), got {pixels.shape}")
    if not (pixels.flags.c_contiguous and pixels.flags.writeable):
        pixels = np.array(pixels, order="C")  # torch.from_numpy needs a writable array
    images = torch.from_numpy(pixels)
    if tuple(images.shape[-2:]) != (image_size, image_size):
        images = _resize(images, image_size)
    return images.expand(-1, 3, -1, -1).contiguous()


def _resize(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Antialiased bilinear resize of (N, C, H, W) uint8 images, in chunks."""
    n, channels = images.shape[:2]
    out = torch.empty((n, channels, image_size, image_size), dtype=torch.uint8)
    for start in range(0, n, _CHUNK):
        chunk = images[start : start + _CHUNK].float()
        size = (image_size, image_size)
        resized = F.interpolate(chunk, size, mode="bilinear", antialias=True, align_corners=False)
        out[start : start + _CHUNK] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out
