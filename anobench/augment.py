"""Batched image augmentation on the training device, with per-sample random parameters.

The paper's train augmentation (docs/method.md §5) is, per image, ``RandomResizedCrop(32, scale=(0.25, 1),
ratio=(1, 1))``, ``ColorJitter(0.4, 0.4, 0.4, 0.4)`` always, and ``GaussianBlur(3, (0.1, 2))`` with
p = 0.75; the test transform is resize to 36 and centre crop 32; both normalise with the CIFAR-10
statistics. Run the conventional way (PIL, one image at a time in DataLoader workers) the
augmentation, not the network, limits a small CIFAR model. :class:`BatchAugmenter` instead
transforms a whole ``uint8`` batch ``(N, C, H, W)`` in a few tensor ops on whatever device holds
it, drawing every random parameter per sample from a passed :class:`torch.Generator`.

How each op is vectorised, and why it is hand-written torch rather than a library:

* **Crop + resize** is one pair of batched matrix products, ``Wy @ x @ Wx^T``, where each sample's
  ``Wy``/``Wx`` hold the 1-D interpolation weights of its own crop box. The weights are the
  triangle filter of PyTorch's antialiased bilinear resize restricted to the crop, so the result
  equals torchvision's ``resized_crop(..., antialias=True)`` of that box exactly, edges and
  downscaling included; ``torchvision.ops.roi_align`` and ``grid_sample`` sample outside the box
  at its border and do not antialias when shrinking. A horizontal flip is folded into ``Wx``.
* **Colour jitter** uses torchvision's tensor formulas (``_blend`` with clamping; contrast blends
  with the per-image mean of the grayscale image; hue through HSV) with per-sample factors
  broadcast over the batch. Like torchvision, each sample applies the four ops in its own random
  order: for each of the four slots of the order the batch is sorted by the op it runs there,
  and each op transforms its contiguous block of samples in place (at most 16 batched calls,
  no per-image loop).
* **Gaussian blur** is a grouped (depthwise) convolution, one group per image channel, with each
  sample's own Gaussian kernel (the outer product of its 1-D kernel, as torchvision builds it) and
  reflect padding; samples that skip the blur get the identity kernel.

torchvision's v2 transforms draw one set of parameters per call, so a batch would share its crop
and jitter. kornia draws per sample, but measured on the same CPU batch it was no faster than
this module, so it is not a dependency; the ops above are short and reproduce torchvision's
numerics. See ``docs/augmentation.md``.
All arithmetic is float32; results are not re-quantised to ``uint8`` between ops as the PIL
pipeline does.

Example:
    >>> import torch
    >>> aug = BatchAugmenter(AugmentRecipe(), size=32, mean=CIFAR10_MEAN, std=CIFAR10_STD)
    >>> images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    >>> aug(images, torch.Generator().manual_seed(0)).shape
    torch.Size([4, 3, 32, 32])
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from anobench.errors import ConfigError

CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2023, 0.1994, 0.2010)

# ITU-R 601-2 luma, the weights torchvision's rgb_to_grayscale uses.
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
# Indices of the colour-jitter ops in AugmentParams.jitter_order, in torchvision's numbering.
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3
# torchvision.transforms.RandomResizedCrop tries this many boxes before its centre-crop fallback.
_CROP_ATTEMPTS = 10


@dataclass(frozen=True)
class AugmentRecipe:
    """Ranges and probabilities of the train augmentation; the defaults are the paper's (docs/method.md §5).

    Attributes:
        crop_scale: Range of the crop's area as a fraction of the image area.
        crop_ratio: Range of the crop's width/height ratio, drawn log-uniformly.
        jitter: Colour-jitter strengths (brightness, contrast, saturation, hue); factors are drawn
            uniformly from ``[max(0, 1 - x), 1 + x]`` and the hue shift from ``[-h, h]``; 0 skips
            that op.
        jitter_p: Probability that a sample is colour-jittered at all.
        blur_kernel: Odd size of the Gaussian blur kernel.
        blur_sigma: Range of the blur's standard deviation in pixels, drawn uniformly.
        blur_p: Probability that a sample is blurred.
        hflip_p: Probability of a horizontal flip.
        grayscale_p: Probability of converting a sample to grayscale (kept at C channels).
    """

    crop_scale: tuple[float, float] = (0.25, 1.0)
    crop_ratio: tuple[float, float] = (1.0, 1.0)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.4)
    jitter_p: float = 1.0
    blur_kernel: int = 3
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_p: float = 0.75
    hflip_p: float = 0.0
    grayscale_p: float = 0.0

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError(f"crop_scale={self.crop_scale!r}: expected 0 < low <= high <= 1")
        lo, hi = self.crop_ratio
        if not 0.0 < lo <= hi:
            raise ConfigError(f"crop_ratio={self.crop_ratio!r}: expected 0 < low <= high")
        if len(self.jitter) != 4 or any(not v >= 0.0 for v in self.jitter):
            raise ConfigError(
                f"jitter={self.jitter!r}: expected four values >= 0 "
                "(brightness, contrast, saturation, hue)"
            )
        if self.jitter[3] > 0.5:
            raise ConfigError(f"jitter={self.jitter!r}: the hue strength must be <= 0.5")
        if (
            isinstance(self.blur_kernel, bool)
            or not isinstance(self.blur_kernel, int)
            or self.blur_kernel < 1
            or self.blur_kernel % 2 == 0
        ):
            raise ConfigError(f"blur_kernel={self.blur_kernel!r}: expected an odd integer >= 1")
        lo, hi = self.blur_sigma
        if not 0.0 < lo <= hi:
            raise ConfigError(f"blur_sigma={self.blur_sigma!r}: expected 0 < low <= high")
        for name in ("jitter_p", "blur_p", "hflip_p", "grayscale_p"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"{name}={p!r}: expected a probability in [0, 1]")


@dataclass(frozen=True)
class AugmentParams:
    """The random parameters drawn for one batch, one row per sample.

    Attributes:
        crop: ``(N, 4)`` int64 crop boxes ``(top, left, height, width)`` in input pixels.
        hflip: ``(N,)`` bool, flip horizontally.
        jitter_applied: ``(N,)`` bool, colour jitter runs for this sample.
        brightness: ``(N,)`` brightness factors (1 = unchanged).
        contrast: ``(N,)`` contrast factors (1 = unchanged).
        saturation: ``(N,)`` saturation factors (1 = unchanged).
        hue: ``(N,)`` hue shifts in turns (0 = unchanged).
        jitter_order: ``(N, 4)`` int64, each row a permutation of the op indices
            ``BRIGHTNESS, CONTRAST, SATURATION, HUE`` in the order they are applied.
        grayscale: ``(N,)`` bool, convert to grayscale.
        blur_applied: ``(N,)`` bool, blur this sample.
        blur_sigma: ``(N,)`` blur standard deviations in pixels.
    """

    crop: torch.Tensor
    hflip: torch.Tensor
    jitter_applied: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor
    jitter_order: torch.Tensor
    grayscale: torch.Tensor
    blur_applied: torch.Tensor
    blur_sigma: torch.Tensor

    def to(self, device: torch.device | str) -> AugmentParams:
        """Returns the same parameters with every tensor on ``device``."""
        return AugmentParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


class BatchAugmenter:
    """Augments a ``uint8`` image batch with the recipe, drawing parameters per sample.

    Output order of the ops: crop + resize (+ flip), colour jitter, grayscale, blur, normalise,
    torchvision's usual composition order.

    Args:
        recipe: Ranges and probabilities of the ops.
        size: Output height and width.
        mean: Per-channel mean subtracted from the ``[0, 1]`` output.
        std: Per-channel standard deviation the output is divided by.

    Raises:
        ConfigError: ``size`` is not positive, ``mean`` and ``std`` differ in length or a std is
            not positive.
    """

    def __init__(
        self,
        recipe: AugmentRecipe,
        size: int,
        mean: tuple[float, ...] = CIFAR10_MEAN,
        std: tuple[float, ...] = CIFAR10_STD,
    ) -> None:
        if size < 1:
            raise ConfigError(f"size={size!r}: expected a positive integer")
        _check_mean_std(mean, std)
        self.recipe = recipe
        self.size = size
        self.mean = tuple(mean)
        self.std = tuple(std)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augments ``images``, uint8 ``(N, C, H, W)``, into float32 ``(N, C, size, size)``.

        Parameters are drawn on ``generator``'s device and moved to ``images.device``, so one seed
        gives the same augmentation on every device.
        """
        _check_images(images, len(self.mean))
        params = self.sample_params(images.shape[0], generator, tuple(images.shape[-2:]))
        return self.apply(images, params.to(images.device))

    def sample_params(
        self,
        n: int,
        generator: torch.Generator,
        image_hw: tuple[int, int] | None = None,
    ) -> AugmentParams:
        """Draws the parameters of ``n`` samples with torchvision's distributions.

        Every call consumes the same amount of randomness for a given ``n`` whatever the recipe,
        so the draws of one op do not shift when another op is switched off.

        Args:
            n: Number of samples.
            generator: Source of randomness; tensors are created on its device.
            image_hw: Input height and width the crops are drawn for; default ``(size, size)``.
        """
        r = self.recipe
        height, width = image_hw if image_hw is not None else (self.size, self.size)
        dev = generator.device

        def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
            u = torch.rand(*shape, generator=generator, device=dev)
            return lo + (hi - lo) * u

        crop = _sample_crops(n, height, width, r.crop_scale, r.crop_ratio, uniform)
        hflip = uniform(0.0, 1.0, n) < r.hflip_p
        jitter_applied = uniform(0.0, 1.0, n) < r.jitter_p
        b, c, s, h = r.jitter
        brightness = uniform(max(0.0, 1.0 - b), 1.0 + b, n)
        contrast = uniform(max(0.0, 1.0 - c), 1.0 + c, n)
        saturation = uniform(max(0.0, 1.0 - s), 1.0 + s, n)
        hue = uniform(-h, h, n)
        jitter_order = uniform(0.0, 1.0, n, 4).argsort(dim=1)
        grayscale = uniform(0.0, 1.0, n) < r.grayscale_p
        blur_applied = uniform(0.0, 1.0, n) < r.blur_p
        blur_sigma = uniform(r.blur_sigma[0], r.blur_sigma[1], n)
        return AugmentParams(
            crop=crop,
            hflip=hflip,
            jitter_applied=jitter_applied,
            brightness=brightness,
            contrast=contrast,
            saturation=saturation,
            hue=hue,
            jitter_order=jitter_order,
            grayscale=grayscale,
            blur_applied=blur_applied,
            blur_sigma=blur_sigma,
        )

    def apply(self, images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Applies given parameters (on ``images.device``) to uint8 ``images``; no randomness."""
        _check_images(images, len(self.mean))
        x = images.float().div_(255.0)
        x = _resized_crop(x, params.crop, self.size, params.hflip)
        x = self._jitter(x, params)
        if self.recipe.grayscale_p > 0.0 and x.shape[1] == 3:
            x = torch.lerp(x, _gray(x), params.grayscale.float()[:, None, None, None])
        if self.recipe.blur_p > 0.0:
            # The normalisation rides on the blur's convolution (weights and bias): one pass less.
            return _blur(
                x,
                params.blur_sigma,
                params.blur_applied,
                self.recipe.blur_kernel,
                self.mean,
                self.std,
            )
        return _normalise(x, self.mean, self.std)

    def _jitter(self, x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        if self.recipe.jitter_p == 0.0:
            return x
        ops = [op for op in _COLOUR_OPS if self.recipe.jitter[op] > 0.0]
        if x.shape[1] == 1:  # torchvision leaves grey images unchanged by saturation and hue
            ops = [op for op in ops if op in (BRIGHTNESS, CONTRAST)]
        if not ops:
            return x
        factors = torch.stack(
            [params.brightness, params.contrast, params.saturation, params.hue], dim=1
        )
        skip = len(_COLOUR_OPS)  # sort key of the samples that are not jittered
        order = torch.where(params.jitter_applied[:, None], params.jitter_order, skip)
        # Each slot of the order sorts the batch by the op it runs there, so every op transforms
        # one contiguous block in place: a gather per slot instead of a gather and a scatter per
        # (slot, op) pair. ``rows`` holds the original index of each current row.
        rows = torch.arange(x.shape[0], device=x.device)
        for slot in range(4):
            key = order[:, slot].index_select(0, rows)
            perm = torch.argsort(key, stable=True)
            rows = rows.index_select(0, perm)
            x = x.index_select(0, perm)
            start = 0
            for op, count in enumerate(torch.bincount(key, minlength=skip + 1).tolist()):
                if op in ops and count:
                    f = factors[rows[start : start + count], op][:, None, None, None]
                    _COLOUR_OPS[op](x.narrow(0, start, count), f)
                start += count
        return x.index_select(0, torch.argsort(rows))


def test_transform(
    images: torch.Tensor,
    size: int = 32,
    resize: int = 36,
    mean: tuple[float, ...] = CIFAR10_MEAN,
    std: tuple[float, ...] = CIFAR10_STD,
) -> torch.Tensor:
    """The paper's test transform on a uint8 batch: resize the shorter side, centre crop, normalise.

    Equals torchvision's ``Resize(resize)`` (bilinear, antialiased), ``CenterCrop(size)``,
    ``ToTensor()``, ``Normalize(mean, std)`` on each image, without rounding to uint8 in between.

    Args:
        images: uint8 ``(N, C, H, W)``.
        size: Side of the square centre crop.
        resize: Length the shorter image side is resized to; at least ``size``.
        mean: Per-channel mean.
        std: Per-channel standard deviation.

    Returns:
        float32 ``(N, C, size, size)`` on ``images.device``.

    Raises:
        ConfigError: ``size`` is not positive or ``resize < size``.
    """
    if not 1 <= size <= resize:
        raise ConfigError(f"size={size!r}, resize={resize!r}: expected 1 <= size <= resize")
    _check_mean_std(mean, std)
    _check_images(images, len(mean))
    h, w = images.shape[-2:]
    # torchvision.transforms.functional.resize: the longer side is truncated, not rounded.
    new_h, new_w = (resize, int(resize * w / h)) if h <= w else (int(resize * h / w), resize)
    x = images.float().div_(255.0)
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True)
    top = round((new_h - size) / 2.0)
    left = round((new_w - size) / 2.0)
    return _normalise(x[..., top : top + size, left : left + size], mean, std)


def augment_images_per_second(
    augmenter: BatchAugmenter,
    images: torch.Tensor,
    generator: torch.Generator,
    repeats: int = 5,
) -> float:
    """Measures the augmenter's throughput on ``images``: the best of ``repeats`` timed calls.

    One untimed call warms up first. On CUDA the device is synchronised around each call.
    """
    if repeats < 1:
        raise ConfigError(f"repeats={repeats!r}: expected a positive integer")

    def sync() -> None:
        if images.device.type == "cuda":
            torch.cuda.synchronize(images.device)

    augmenter(images, generator)
    best = math.inf
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        augmenter(images, generator)
        sync()
        best = min(best, time.perf_counter() - start)
    return images.shape[0] / best


def _check_mean_std(mean: tuple[float, ...], std: tuple[float, ...]) -> None:
    if len(mean) != len(std) or len(mean) not in (1, 3):
        raise ConfigError(
            f"mean={mean!r}, std={std!r}: expected two sequences of 1 or 3 channel values"
        )
    if any(not s > 0.0 for s in std):
        raise ConfigError(f"std={std!r}: every value must be positive")


def _check_images(images: torch.Tensor, channels: int) -> None:
    if images.dtype != torch.uint8:
        raise TypeError(f"images have dtype {images.dtype}; expected torch.uint8")
    if images.ndim != 4 or images.shape[1] != channels:
        raise ValueError(
            f"images have shape {tuple(images.shape)}; expected (N, {channels}, H, W) "
            f"to match the {channels}-channel mean and std"
        )


def _sample_crops(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    uniform: Callable[..., torch.Tensor],
) -> torch.Tensor:
    """torchvision's RandomResizedCrop.get_params for ``n`` samples at once.

    All ``_CROP_ATTEMPTS`` boxes are drawn for every sample; each takes its first box that fits,
    and samples where none fits fall back to the centre crop clamped to the ratio range.
    """
    area = height * width
    target_area = area * uniform(scale[0], scale[1], n, _CROP_ATTEMPTS)
    aspect = torch.exp(uniform(math.log(ratio[0]), math.log(ratio[1]), n, _CROP_ATTEMPTS))
    w = torch.sqrt(target_area * aspect).round()
    h = torch.sqrt(target_area / aspect).round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    top = torch.floor(uniform(0.0, 1.0, n) * (height - h + 1)).clamp_(max=height - h)
    left = torch.floor(uniform(0.0, 1.0, n) * (width - w + 1)).clamp_(max=width - w)

    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fw, fh = round(height * ratio[1]), height
    else:
        fw, fh = width, height
    fallback = torch.tensor(
        [(height - fh) // 2, (width - fw) // 2, fh, fw], dtype=torch.float32, device=w.device
    )
    box = torch.stack([top, left, h, w], dim=1)
    box = torch.where(fits.any(dim=1, keepdim=True), box, fallback)
    return box.long()


def _resize_weights(
    start: torch.Tensor,
    length: torch.Tensor,
    in_size: int,
    out_size: int,
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample ``(N, out_size, in_size)`` weights resizing ``[start, start + length)``.

    The triangle filter of PyTorch's antialiased bilinear resize (aten's ``_upsample_bilinear2d_aa``,
    which torchvision's tensor resize calls): half-width 1 input pixel when enlarging and the
    scale factor when shrinking, pixels outside the crop excluded and each row renormalised,
    which clamps at the crop's border as resizing the cropped image alone would. Rows of samples
    with ``flip`` set are reversed (a flip of the output).
    """
    start = start.float()[:, None, None]
    length = length.float()[:, None, None]
    scale = length / out_size
    support = scale.clamp(min=1.0)
    out_idx = torch.arange(out_size, device=start.device, dtype=torch.float32)[None, :, None]
    if flip is not None:
        out_idx = torch.lerp(out_idx, out_size - 1 - out_idx, flip.float()[:, None, None])
    pix = torch.arange(in_size, device=start.device, dtype=torch.float32)[None, None, :]
    # In-place on the one (N, out, in) tensor, masks as floats: fresh large temporaries cost
    # page faults on CPU, and bool tensors are slow there.
    wgt = pix - (start - 0.5 + (out_idx + 0.5) * scale)
    wgt.div_(support).abs_().neg_().add_(1.0).clamp_(min=0.0)
    wgt.mul_(((pix >= start) & (pix < start + length)).float())
    return wgt.div_(wgt.sum(dim=2, keepdim=True))


def _resized_crop(
    x: torch.Tensor, crop: torch.Tensor, size: int, hflip: torch.Tensor
) -> torch.Tensor:
    """Crops each sample to its box, resizes it to ``size`` and optionally flips it."""
    n, c, height, width = x.shape
    wy = _resize_weights(crop[:, 0], crop[:, 2], height, size)
    wx = _resize_weights(crop[:, 1], crop[:, 3], width, size, flip=hflip)
    # Plain bmm calls, the channels folded into the batch or the matrix side: broadcasting the
    # weights over C makes matmul copy them and is several times slower on CPU.
    rows = torch.bmm(x.reshape(n, c * height, width), wx.transpose(1, 2))
    wy = wy.repeat_interleave(c, dim=0)
    return torch.bmm(wy, rows.reshape(n * c, height, size)).reshape(n, c, size, size)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` luma of RGB ``x``; grey input is returned as is."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(dim=1)
    wr, wg, wb = _GRAY_WEIGHTS
    return (wr * r + wg * g + wb * b).unsqueeze(1)


# The colour ops work in place on ``x``, a block of _jitter's own gathered copy of the batch.
def _blend_(x: torch.Tensor, other: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend``, ``clamp(f * x + (1 - f) * other, 0, 1)``, in place on ``x``."""
    other = other * (1.0 - f)  # first, in case other is x itself (a grey image's gray)
    return x.mul_(f).add_(other).clamp_(0.0, 1.0)


def _brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return x.mul_(f).clamp_(0.0, 1.0)


def _contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return _blend_(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), f)


def _saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return _blend_(x, _gray(x), f)


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotates the HSV hue by ``shift`` turns, keeping saturation and value.

    The hue is torchvision's ``_rgb2hsv`` one, in sixths of a turn (``2 i + (next - prev) /
    chroma`` for the largest channel ``i``, R before G before B on ties). The way back writes
    each channel as ``min + chroma * pure_c(h)`` with the fully saturated colour of hue ``h``,
    ``pure = clamp((|6h - 3| - 1, 2 - |6h - 2|, 2 - |6h - 4|), 0, 1)``, which equals
    torchvision's ``_hsv2rgb`` without its six-way select.
    """
    # In-place ops wherever possible (on CPU every fresh large temporary costs page faults), and
    # float 0/1 masks with lerp (exact at 0 and 1) instead of bool masks with where(): on CPU
    # where() and bool tensors are ~20x slower than float arithmetic.
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    maxc = x.amax(dim=1, keepdim=True)
    minc = x.amin(dim=1, keepdim=True)
    chroma = maxc - minc
    not_r = torch.sign(maxc - r)  # 0 where R is the largest channel, else 1
    not_g = torch.sign(maxc - g)
    from_g = torch.sub(b, r).add_(chroma, alpha=2.0)
    from_b = torch.sub(r, g).add_(chroma, alpha=4.0)
    hue6 = torch.lerp(g - b, torch.lerp(from_g, from_b, not_g), not_r)
    hue6.div_(chroma.clamp(min=1e-12)).add_(6.0 * shift + 6.0)  # in [-1, 5) + shift + 6 > 0
    hue6.sub_(torch.floor(hue6 * (1.0 / 6.0)).mul_(6.0))  # mod 6; torch.remainder is slower
    centre = torch.tensor([3.0, 2.0, 4.0], device=x.device)[None, :, None, None]
    slope = torch.tensor([1.0, -1.0, -1.0], device=x.device)[None, :, None, None]
    offset = torch.tensor([-1.0, 2.0, 2.0], device=x.device)[None, :, None, None]
    pure = (hue6 - centre).abs_().mul_(slope).add_(offset).clamp_(0.0, 1.0)
    return torch.addcmul(minc, chroma, pure, out=x)


_COLOUR_OPS = {BRIGHTNESS: _brightness, CONTRAST: _contrast, SATURATION: _saturation, HUE: _hue}


def _blur(
    x: torch.Tensor,
    sigma: torch.Tensor,
    applied: torch.Tensor,
    ksize: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> torch.Tensor:
    """Gaussian blur with each sample's sigma (reflect padding as torchvision's), then normalise."""
    n, c, h, w = x.shape
    half = ksize // 2
    taps = torch.arange(-half, half + 1, device=x.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps[None, :] / sigma[:, None]) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    identity = (taps == 0).float().expand_as(kernel)
    kernel = torch.where(applied[:, None], kernel, identity)
    # One k x k depthwise conv (a group per sample and channel) beats two 1-D passes on CPU.
    inv_std = 1.0 / torch.tensor(std, device=x.device, dtype=torch.float32)
    shift = -torch.tensor(mean, device=x.device, dtype=torch.float32) * inv_std
    kernel2d = kernel[:, None, :, None] * kernel[:, None, None, :] * inv_std[None, :, None, None]
    y = F.pad(x, (half, half, half, half), mode="reflect").reshape(1, n * c, h + 2 * half, -1)
    out = F.conv2d(y, kernel2d.reshape(n * c, 1, ksize, ksize), shift.repeat(n), groups=n * c)
    return out.reshape(n, c, h, w)


def _normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean, device=x.device, dtype=torch.float32)[None, :, None, None]
    s = torch.tensor(std, device=x.device, dtype=torch.float32)[None, :, None, None]
    return (x - m) / s


test_transform.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported
