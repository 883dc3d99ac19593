"""Synthetic outlier generators (docs/method.md §4): shift transforms of whole uint8 image batches.

A *spec* names one generator or a union ``"a+b+c"``: each sample gets one of the listed
generators, chosen uniformly per sample, and the generator id of that sample is the 1-based
position of its generator in the spec (0 is reserved for inliers). The default spec
``rot90+rot180+rot270`` gives ids 1, 2, 3 = rotations by 90, 180, 270 degrees.

Every generator works on (N, C, H, W) uint8 tensors on any device, draws per-sample randomness
from the ``torch.Generator`` it is given (same seed, same outliers) and loops over the spec's
generators, never over images.

Generators (parameters as in the authors' code):

- ``rot90``, ``rot180``, ``rot270``: counter-clockwise rotation (square images for 90/270).
- ``hflip``: horizontal flip.
- ``cutpaste``: a rectangle of area 2–15% of the image, aspect ratio log-uniform in 0.3–3.3,
  cut at a random place and pasted at another random place.
- ``cutpaste-scar``: a thin strip, width 2–16 px, height 10–25 px (integers), cut, colour-jittered
  (brightness, contrast, saturation factors in 0.9–1.1, hue shift in ±0.1 of a turn; the last two
  for 3-channel images only), rotated by an angle in ±45° and pasted at a random place.
- ``scramble``: the image cut into a 4×4 grid of square cells, each cell given one of the 7
  non-identity rotations/flips (the dihedral group of the square) uniformly at random.
- ``mixup``: λ·x + (1−λ)·x', λ ~ Beta(0.4, 0.4), x' another image of the same input batch.
- ``oe``: Outlier Exposure, an image drawn uniformly from an external uint8 set
  (``get_generator("oe", images=tensor)``); ignores the normal image.

Example:
    >>> import torch
    >>> gen = get_generator("rot90+cutpaste")
    >>> images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    >>> out, ids = gen(images, torch.Generator().manual_seed(0))
    >>> out.shape, out.dtype, sorted(set(ids.tolist())) <= [1, 2]
    (torch.Size([8, 3, 32, 32]), torch.uint8, True)
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import torch

from anobench.registry import Registry

DEFAULT_SPEC = "rot90+rot180+rot270"
"""The paper's outliers: the three rotations, ids 1, 2, 3."""

Params = dict[str, torch.Tensor]


def _rand(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """n uniform floats in [0, 1) from ``generator``, moved to ``device``."""
    return torch.rand(n, generator=generator, device=generator.device).to(device)


def _uniform(
    n: int, low: float, high: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    return low + (high - low) * _rand(n, generator, device)


def _randint_below(
    high: torch.Tensor, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """One int uniformly in [0, high[i]) per entry of the int64 tensor ``high`` (all >= 1)."""
    draw = (_rand(high.shape[0], generator, device) * high).long()
    return torch.minimum(draw, high - 1)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp_(0, 255).to(torch.uint8)


class ShiftTransform:
    """One outlier generator: turns selected images of a batch into outliers.

    Subclasses implement :meth:`sample` (per-sample random parameters, drawn from the
    generator) and :meth:`render` (deterministic given those parameters).
    """

    def sample(
        self, images: torch.Tensor, index: torch.Tensor, generator: torch.Generator
    ) -> Params:
        """Random parameters for the rows ``index`` of ``images`` (default: none)."""
        return {}

    def render(self, images: torch.Tensor, index: torch.Tensor, params: Params) -> torch.Tensor:
        """The outliers made from ``images[index]``, (len(index), C, H, W) uint8."""
        raise NotImplementedError  # pragma: no cover - abstract

    def apply(
        self, images: torch.Tensor, index: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Outliers made from the rows ``index`` of the whole batch ``images``."""
        return self.render(images, index, self.sample(images, index, generator))


GENERATORS: Registry[ShiftTransform] = Registry("outlier generator")
register_generator = GENERATORS.register


class _Rotation(ShiftTransform):
    quarter_turns = 0

    def render(self, images: torch.Tensor, index: torch.Tensor, params: Params) -> torch.Tensor:
        if self.quarter_turns % 2 and images.shape[-1] != images.shape[-2]:
            raise ValueError(
                f"rotation by {90 * self.quarter_turns} degrees needs square images, got "
                f"{images.shape[-2]}x{images.shape[-1]}"
            )
        return torch.rot90(images[index], self.quarter_turns, dims=(2, 3))


@register_generator("rot90")
class Rot90(_Rotation):
    """Rotation by 90° counter-clockwise."""

    quarter_turns = 1


@register_generator("rot180")
class Rot180(_Rotation):
    """Rotation by 180°."""

    quarter_turns = 2


@register_generator("rot270")
class Rot270(_Rotation):
    """Rotation by 270° counter-clockwise."""

    quarter_turns = 3


@register_generator("hflip")
class HFlip(ShiftTransform):
    """Horizontal (left-right) flip."""

    def render(self, images: torch.Tensor, index: torch.Tensor, params: Params) -> torch.Tensor:
        return images[index].flip(-1)


def _paste(
    images: torch.Tensor, index: torch.Tensor, inside: torch.Tensor, src_y: torch.Tensor,
    src_x: torch.Tensor, source: torch.Tensor | None = None,
) -> torch.Tensor:
    """Copy pixel (src_y, src_x)[n, y, x] of each source image to (y, x) where ``inside``.

    Args:
        images: Whole (N, C, H, W) batch; the targets are ``images[index]``.
        index: (n,) rows of the batch to paste into.
        inside: (n, H, W) bool, where to paste.
        src_y, src_x: (n, H, W) int64 source coordinates (clamped into the image).
        source: (n, C, H, W) images to copy from; defaults to the targets themselves.
    """
    target = images[index]
    source = target if source is None else source
    h, w = images.shape[-2:]
    rows = torch.arange(index.shape[0], device=images.device)[:, None, None]
    picked = source[rows, :, src_y.clamp(0, h - 1), src_x.clamp(0, w - 1)]  # (n, H, W, C)
    return torch.where(inside[:, None], picked.permute(0, 3, 1, 2), target)


@register_generator("cutpaste")
class CutPaste(ShiftTransform):
    """Cut a random rectangle and paste it elsewhere in the same image.

    Args:
        area: (min, max) patch area as a fraction of the image area.
        aspect: (min, max) patch aspect ratio width/height, sampled log-uniformly.
    """

    def __init__(
        self, area: tuple[float, float] = (0.02, 0.15), aspect: tuple[float, float] = (0.3, 3.3)
    ) -> None:
        if not 0 < area[0] <= area[1] <= 1:
            raise ValueError(f"area must satisfy 0 < min <= max <= 1, got {area}")
        if not 0 < aspect[0] <= aspect[1]:
            raise ValueError(f"aspect must satisfy 0 < min <= max, got {aspect}")
        self.area, self.aspect = tuple(area), tuple(aspect)

    def sample(
        self, images: torch.Tensor, index: torch.Tensor, generator: torch.Generator
    ) -> Params:
        n, device = index.shape[0], images.device
        h, w = images.shape[-2:]
        area = _uniform(n, *self.area, generator, device)
        low, high = math.log(self.aspect[0]), math.log(self.aspect[1])
        aspect = _uniform(n, low, high, generator, device).exp()
        pixels = area * h * w
        ph = (pixels / aspect).sqrt().round().long().clamp(1, h)
        pw = (pixels * aspect).sqrt().round().long().clamp(1, w)
        return {
            "area": area, "aspect": aspect, "height": ph, "width": pw,
            "src_y": _randint_below(h - ph + 1, generator, device),
            "src_x": _randint_below(w - pw + 1, generator, device),
            "dst_y": _randint_below(h - ph + 1, generator, device),
            "dst_x": _randint_below(w - pw + 1, generator, device),
        }

    def render(self, images: torch.Tensor, index: torch.Tensor, params: Params) -> torch.Tensor:
        h, w = images.shape[-2:]
        ys = torch.arange(h, device=images.device)[None, :]
        xs = torch.arange(w, device=images.device)[None, :]
        dy, dx = params["dst_y"][:, None], params["dst_x"][:, None]
        in_y = (ys >= dy) & (ys < dy + params["height"][:, None])
        in_x = (xs >= dx) & (xs < dx + params["width"][:, None])
        src_y = (ys - dy + params["src_y"][:, None])[:, :, None].expand(-1, h, w)
        src_x = (xs - dx + params["src_x"][:, None])[:, None, :].expand(-1, h, w)
        return _paste(images, index, in_y[:, :, None] & in_x[:, None, :], src_y, src_x)


def _jitter(x: torch.Tensor, params: Params) -> torch.Tensor:
    """Per-image brightness, contrast, saturation and hue jitter of float (n, C, H, W) in 0..255."""
    def per_image(t: torch.Tensor) -> torch.Tensor:
        return t[:, None, None, None]

    x = (x * per_image(params["brightness"])).clamp(0, 255)
    gray = x.mean(dim=1, keepdim=True) if x.shape[1] != 3 else (
        0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    )
    mean = gray.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * per_image(params["contrast"]) + mean).clamp(0, 255)
    if x.shape[1] != 3:
        return x
    gray = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    x = ((x - gray) * per_image(params["saturation"]) + gray).clamp(0, 255)
    # Hue: rotate the chroma plane of YIQ, a linear stand-in for a shift of the HSV hue.
    to_yiq = x.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    yiq = torch.einsum("kc,nchw->nkhw", to_yiq, x)
    angle = 2 * math.pi * params["hue"]
    cos, sin = per_image(angle.cos())[:, 0], per_image(angle.sin())[:, 0]
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    return torch.einsum("kc,nchw->nkhw", torch.linalg.inv(to_yiq), yiq).clamp(0, 255)


@register_generator("cutpaste-scar")
class CutPasteScar(ShiftTransform):
    """Cut a thin strip, colour-jitter it, rotate it and paste it elsewhere in the same image.

    Args:
        width: (min, max) strip width in pixels, integers, inclusive.
        height: (min, max) strip height in pixels, integers, inclusive.
        angle: Maximum absolute rotation in degrees.
        jitter: Maximum relative change of brightness, contrast, saturation, and of hue in turns.
    """

    def __init__(
        self, width: tuple[int, int] = (2, 16), height: tuple[int, int] = (10, 25),
        angle: float = 45.0, jitter: float = 0.1,
    ) -> None:
        if not 1 <= width[0] <= width[1] or not 1 <= height[0] <= height[1]:
            raise ValueError(f"width and height must be 1 <= min <= max, got {width}, {height}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self.width, self.height = tuple(width), tuple(height)
        self.angle, self.jitter = float(angle), float(jitter)

    def sample(
        self, images: torch.Tensor, index: torch.Tensor, generator: torch.Generator
    ) -> Params:
        n, device = index.shape[0], images.device
        h, w = images.shape[-2:]

        def integers(low: int, high: int) -> torch.Tensor:
            span = torch.full((n,), high - low + 1, dtype=torch.int64, device=device)
            return low + _randint_below(span, generator, device)

        sw = integers(*self.width).clamp(max=w)
        sh = integers(*self.height).clamp(max=h)
        jitter = {
            key: _uniform(n, 1 - self.jitter, 1 + self.jitter, generator, device)
            for key in ("brightness", "contrast", "saturation")
        }
        # Centres keep the unrotated strip inside the image, at the source and the destination.
        def centre(size: torch.Tensor, extent: int) -> torch.Tensor:
            return size / 2 + _rand(n, generator, device) * (extent - size)

        return {
            "width": sw, "height": sh,
            "angle": _uniform(n, -self.angle, self.angle, generator, device),
            "src_cy": centre(sh, h), "src_cx": centre(sw, w),
            "dst_cy": centre(sh, h), "dst_cx": centre(sw, w),
            **jitter, "hue": _uniform(n, -self.jitter, self.jitter, generator, device),
        }

    def render(self, images: torch.Tensor, index: torch.Tensor, params: Params) -> torch.Tensor:
        h, w = images.shape[-2:]
        device = images.device

        def col(key: str) -> torch.Tensor:
            return params[key].to(torch.float32)[:, None, None]

        # Pixel centres sit at integer + 0.5; map every destination pixel into strip coordinates.
        ys = torch.arange(h, device=device, dtype=torch.float32)[None, :, None] + 0.5
        xs = torch.arange(w, device=device, dtype=torch.float32)[None, None, :] + 0.5
        theta = torch.deg2rad(col("angle"))
        dy, dx = ys - col("dst_cy"), xs - col("dst_cx")
        u = theta.cos() * dx + theta.sin() * dy
        v = -theta.sin() * dx + theta.cos() * dy
        inside = (u.abs() < col("width") / 2) & (v.abs() < col("height") / 2)
        src_y = (col("src_cy") + v).floor().long()
        src_x = (col("src_cx") + u).floor().long()
        source = _to_uint8(_jitter(images[index].to(torch.float32), params))
        return _paste(images, index, inside, src_y, src_x, source=source)


def _dihedral(cells: torch.Tensor, element: int) -> torch.Tensor:
    """Element 0..7 of the square's dihedral group: flip if element >= 4, then element % 4 turns."""
    if element >= 4:
        cells = cells.flip(-1)
    return torch.rot90(cells, element % 4, dims=(-2, -1))


@register_generator("scramble")
class Scramble(ShiftTransform):
    """Cut the image into a grid of square cells and rotate/flip every cell at random.

    Args:
        grid: Cells per side (4 = a 4×4 grid); H and W must be multiples with square cells.
    """

    def __init__(self, grid: int = 4) -> None:
        if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
            raise ValueError(f"grid must be an int >= 1, got {grid!r}")
        self.grid = grid

    def _cell(self, images: torch.Tensor) -> int:
        h, w = images.shape[-2:]
        if h % self.grid or w % self.grid or h != w:
            raise ValueError(
                f"scramble with a {self.grid}x{self.grid} grid needs square images with sides "
                f"divisible by {self.grid}, got {h}x{w}"
            )
        return h // self.grid

    def sample(
        self, images: torch.Tensor, index: torch.Tensor, generator: torch.Generator
    ) -> Params:
        self._cell(images)
        count = index.shape[0] * self.grid * self.grid
        seven = torch.full((count,), 7, dtype=torch.int64, device=images.device)
        element = 1 + _randint_below(seven, generator, images.device)
        return {"element": element.view(index.shape[0], self.grid, self.grid)}

    def render(self, images: torch.Tensor, index: torch.Tensor, params: Params) -> torch.Tensor:
        cell, g = self._cell(images), self.grid
        x = images[index]
        n, c = x.shape[:2]
        cells = x.view(n, c, g, cell, g, cell).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, cell, cell)
        element = params["element"].reshape(-1)
        out = cells.clone()
        for e in range(1, 8):
            rows = (element == e).nonzero().squeeze(1)
            if rows.numel():
                out[rows] = _dihedral(cells[rows], e)
        return out.view(n, g, g, c, cell, cell).permute(0, 3, 1, 4, 2, 5).reshape(x.shape)


@register_generator("mixup")
class Mixup(ShiftTransform):
    """Blend each image with another image of the same input batch: λ·x + (1−λ)·x'.

    Args:
        alpha: λ ~ Beta(alpha, alpha).
    """

    def __init__(self, alpha: float = 0.4) -> None:
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        self.alpha = float(alpha)

    def sample(
        self, images: torch.Tensor, index: torch.Tensor, generator: torch.Generator
    ) -> Params:
        total, n, device = images.shape[0], index.shape[0], images.device
        if total < 2:
            raise ValueError("mixup needs a batch of at least 2 images to mix with another one")
        # torch's Beta sampler takes no Generator; a numpy stream seeded from it keeps seeds exact.
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        lam = np.random.default_rng(seed).beta(self.alpha, self.alpha, size=n)
        shift = 1 + _randint_below(torch.full((n,), total - 1, device=device), generator, device)
        return {
            "lam": torch.as_tensor(lam, dtype=torch.float32, device=device),
            "partner": (index + shift) % total,
        }

    def render(self, images: torch.Tensor, index: torch.Tensor, params: Params) -> torch.Tensor:
        lam = params["lam"][:, None, None, None]
        mixed = lam * images[index].to(torch.float32)
        mixed += (1 - lam) * images[params["partner"]].to(torch.float32)
        return _to_uint8(mixed)


@register_generator("oe")
class OutlierExposure(ShiftTransform):
    """Outlier Exposure: replace the image by one drawn uniformly from an external image set.

    Args:
        images: (M, C, H, W) uint8 external images (any device); C, H, W must match the batch.
    """

    def __init__(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError("oe needs images=(M, C, H, W) uint8 tensor")
        if images.shape[0] == 0:
            raise ValueError("oe needs at least one external image")
        self.images = images

    def sample(
        self, images: torch.Tensor, index: torch.Tensor, generator: torch.Generator
    ) -> Params:
        if images.shape[1:] != self.images.shape[1:]:
            raise ValueError(
                f"oe images are {tuple(self.images.shape[1:])}, batch images "
                f"{tuple(images.shape[1:])}"
            )
        size = torch.full((index.shape[0],), self.images.shape[0], device=images.device)
        return {"source": _randint_below(size, generator, images.device)}

    def render(self, images: torch.Tensor, index: torch.Tensor, params: Params) -> torch.Tensor:
        return self.images[params["source"].to(self.images.device)].to(images.device)


class OutlierGenerator:
    """A union of registered generators; call it on a uint8 batch to make one outlier per image.

    Args:
        names: Registry names of the generators, in spec order (ids 1, 2, ...).
        parts: The generators themselves, same order.
    """

    def __init__(self, names: list[str], parts: list[ShiftTransform]) -> None:
        if not names or len(names) != len(parts):
            raise ValueError("an outlier generator needs one or more named parts")
        self.names, self.parts = list(names), list(parts)

    @property
    def spec(self) -> str:
        """The spec string, e.g. ``"rot90+rot180+rot270"``."""
        return "+".join(self.names)

    def __repr__(self) -> str:
        return f"OutlierGenerator({self.spec!r})"

    def __call__(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        choice: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Make one outlier from every image.

        Args:
            images: (N, C, H, W) uint8 normal images, any device.
            generator: Source of all randomness (choice of generator and its parameters).
            choice: Optional (N,) int64, 0-based index into the spec of the generator each
                sample must use; drawn uniformly per sample when None.

        Returns:
            The (N, C, H, W) uint8 outliers and the (N,) int64 generator ids (1-based).
        """
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be an (N, C, H, W) uint8 tensor, got {got}")
        n, device = images.shape[0], images.device
        if choice is None:
            choice = torch.randint(
                len(self.parts), (n,), generator=generator, device=generator.device
            ).to(device)
        else:
            choice = choice.to(device=device, dtype=torch.int64)
            if choice.shape != (n,) or bool(((choice < 0) | (choice >= len(self.parts))).any()):
                raise ValueError(
                    f"choice must be ({n},) ints in 0..{len(self.parts) - 1} for spec "
                    f"{self.spec!r}, got shape {tuple(choice.shape)}"
                )
        out = images.clone()
        for k, part in enumerate(self.parts):
            index = (choice == k).nonzero().squeeze(1)
            if index.numel():
                out[index] = part.apply(images, index, generator)
        return out, choice + 1


def list_generators() -> list[str]:
    """Names of all registered outlier generators, sorted."""
    return GENERATORS.names()


def spec_names(spec: str) -> list[str]:
    """The registered generator names of ``spec``, in order, without building them.

    Raises:
        UnknownNameError: If a name in the spec is not registered.
        ValueError: If the spec is empty or has an empty name.

    Example:
        >>> spec_names("rot90 + cutpaste")
        ['rot90', 'cutpaste']
    """
    names = [name.strip() for name in spec.split("+")]
    if not spec.strip() or not all(names):
        raise ValueError(f"bad outlier generator spec {spec!r}; expected names joined by '+'")
    for name in names:
        GENERATORS.factory(name)
    return names


def get_generator(spec: str = DEFAULT_SPEC, **kwargs: Any) -> OutlierGenerator:
    """Build the generator for ``spec``, e.g. ``"rot90"`` or ``"rot90+cutpaste"``.

    Each keyword argument goes to every generator of the spec whose constructor takes it
    (``get_generator("rot90+oe", images=external)``).

    Raises:
        UnknownNameError: If a name in the spec is not registered.
        ValueError: If the spec is empty or a keyword argument fits none of its generators.
    """
    names = spec_names(spec)
    factories = [GENERATORS.factory(name) for name in names]
    accepted = [set(inspect.signature(f).parameters) for f in factories]
    unused = set(kwargs) - set().union(*accepted)
    if unused:
        raise ValueError(f"arguments {sorted(unused)} fit no generator of spec {spec!r}")
    parts = [
        factory(**{k: v for k, v in kwargs.items() if k in params})
        for factory, params in zip(factories, accepted)
    ]
    return OutlierGenerator(names, parts)
