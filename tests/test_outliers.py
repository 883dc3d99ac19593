"""Outlier generators: shapes, ids, seeds, per-sample randomness and documented parameter ranges."""

from __future__ import annotations

import pytest
import torch

from anobench.errors import UnknownNameError
from anobench.outliers import DEFAULT_SPEC, get_generator, list_generators

ALL = ["cutpaste", "cutpaste-scar", "hflip", "mixup", "oe", "rot180", "rot270", "rot90", "scramble"]
RANDOM = ["cutpaste", "cutpaste-scar", "mixup", "oe", "scramble"]


def batch(n: int = 16, c: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8)


EXTERNAL = batch(5, seed=99)


def build(spec: str):  # noqa: ANN201 - the generator type is an implementation detail here
    return get_generator(spec, images=EXTERNAL) if "oe" in spec.split("+") else get_generator(spec)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_registry_lists_every_generator() -> None:
    assert list_generators() == ALL


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_dtype_ids_and_change(name: str, channels: int) -> None:
    images = batch(c=channels)
    gen = get_generator(name, images=batch(5, c=channels, seed=9)) if name == "oe" else build(name)
    out, ids = gen(images, seeded(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert ids.dtype == torch.int64 and ids.tolist() == [1] * len(images)
    assert not torch.equal(out, images)
    assert images.equal(batch(c=channels))  # input untouched


@pytest.mark.parametrize("name", ALL)
def test_seeds_reproduce(name: str) -> None:
    gen = build(name)
    a, ids_a = gen(batch(), seeded(3))
    b, ids_b = gen(batch(), seeded(3))
    assert torch.equal(a, b) and torch.equal(ids_a, ids_b)
    if name in RANDOM:
        assert not torch.equal(a, gen(batch(), seeded(4))[0])


@pytest.mark.parametrize("name", ["cutpaste", "cutpaste-scar", "scramble"])
def test_per_sample_randomness(name: str) -> None:
    """Identical input images get different outliers: parameters are drawn per sample."""
    images = batch(1).repeat(12, 1, 1, 1)
    out, _ = build(name)(images, seeded(0))
    assert len({bytes(o.flatten().tolist()) for o in out}) == 12


@pytest.mark.parametrize("name", RANDOM)
def test_sample_params_differ_between_samples(name: str) -> None:
    gen = build(name).parts[0]
    images = batch()
    params = gen.sample(images, torch.arange(len(images)), seeded(0))
    assert params
    for key, value in params.items():
        rows = value.reshape(len(images), -1)
        assert len({tuple(r.tolist()) for r in rows}) > 1, key


def test_rotations_by_hand() -> None:
    image = torch.tensor([[[[1, 2], [3, 4]]]], dtype=torch.uint8)
    expected = {  # counter-clockwise as displayed (row 0 at the top)
        "rot90": [[2, 4], [1, 3]],
        "rot180": [[4, 3], [2, 1]],
        "rot270": [[3, 1], [4, 2]],
        "hflip": [[2, 1], [4, 3]],
    }
    for name, grid in expected.items():
        out, _ = get_generator(name)(image, seeded(0))
        assert out[0, 0].tolist() == grid, name


def test_rotation_needs_square_images() -> None:
    with pytest.raises(ValueError, match="square"):
        get_generator("rot90")(torch.zeros(2, 3, 8, 6, dtype=torch.uint8), seeded(0))
    out, _ = get_generator("rot180")(torch.zeros(2, 3, 8, 6, dtype=torch.uint8), seeded(0))
    assert out.shape == (2, 3, 8, 6)


def test_default_union_ids_and_choice() -> None:
    gen = get_generator()
    assert gen.spec == DEFAULT_SPEC == "rot90+rot180+rot270"
    images = batch(60)
    out, ids = gen(images, seeded(1))
    assert set(ids.tolist()) == {1, 2, 3}
    for k in (1, 2, 3):
        rows = ids == k
        assert torch.equal(out[rows], torch.rot90(images[rows], k, dims=(2, 3)))
    forced = torch.tensor([2, 0, 1, 0] * 15)
    out, ids = gen(images, seeded(1), choice=forced)
    assert ids.tolist() == (forced + 1).tolist()
    assert torch.equal(out[1], torch.rot90(images[1], 1, dims=(1, 2)))
    assert torch.equal(out[0], torch.rot90(images[0], 3, dims=(1, 2)))


def test_union_choice_is_uniform_per_sample() -> None:
    _, ids = get_generator("rot90+hflip+cutpaste+scramble")(batch(400, size=8), seeded(2))
    counts = torch.bincount(ids, minlength=5)[1:]
    assert counts.min() > 60  # expected 100 each; 60 is > 4 standard deviations below


def test_union_matches_parts() -> None:
    images = batch(20)
    out, ids = get_generator("hflip+rot180")(images, seeded(5))
    flipped = ids == 1
    assert torch.equal(out[flipped], images[flipped].flip(-1))
    assert torch.equal(out[~flipped], images[~flipped].flip(-1).flip(-2))


def test_spec_errors() -> None:
    with pytest.raises(UnknownNameError, match="rot45"):
        get_generator("rot90+rot45")
    with pytest.raises(ValueError, match="spec"):
        get_generator("rot90++hflip")
    with pytest.raises(ValueError, match="fit no generator"):
        get_generator("rot90", images=EXTERNAL)
    with pytest.raises(ValueError, match="uint8"):
        get_generator("rot90")(batch().float(), seeded(0))
    with pytest.raises(ValueError, match="choice"):
        get_generator("rot90+hflip")(batch(4), seeded(0), choice=torch.tensor([0, 1, 2, 0]))


def test_cutpaste_parameters_and_region() -> None:
    gen = get_generator("cutpaste").parts[0]
    images = batch(200)
    index = torch.arange(len(images))
    p = gen.sample(images, index, seeded(0))
    assert p["area"].min() >= 0.02 and p["area"].max() <= 0.15
    assert p["aspect"].min() >= 0.3 and p["aspect"].max() <= 3.3
    assert p["aspect"].min() < 0.6 and p["aspect"].max() > 1.8  # both tails reached
    h, w = p["height"].double(), p["width"].double()
    assert ((w / h - p["aspect"]).abs() / p["aspect"] < 0.5).all()
    assert ((h * w / 1024 - p["area"]).abs() < 0.03).all()
    corners = (("src_y", "height"), ("dst_y", "height"), ("src_x", "width"), ("dst_x", "width"))
    for key, size in corners:
        assert (p[key] >= 0).all() and (p[key] + p[size] <= 32).all()
    out = gen.render(images, index, p)
    for i in range(0, 200, 17):  # the pasted box holds the cut box; nothing else changes
        y, x, ph, pw = (int(p[k][i]) for k in ("dst_y", "dst_x", "height", "width"))
        sy, sx = int(p["src_y"][i]), int(p["src_x"][i])
        pasted = out[i, :, y : y + ph, x : x + pw]
        assert torch.equal(pasted, images[i, :, sy : sy + ph, sx : sx + pw])
        outside = out[i].clone()
        outside[:, y : y + ph, x : x + pw] = images[i, :, y : y + ph, x : x + pw]
        assert torch.equal(outside, images[i])


def test_scar_parameters_and_region() -> None:
    gen = get_generator("cutpaste-scar").parts[0]
    images = batch(200)
    index = torch.arange(len(images))
    p = gen.sample(images, index, seeded(0))
    assert set(p["width"].tolist()) <= set(range(2, 17)) and len(set(p["width"].tolist())) > 10
    assert set(p["height"].tolist()) <= set(range(10, 26))
    assert p["angle"].abs().max() <= 45 and p["angle"].abs().max() > 35
    for key in ("brightness", "contrast", "saturation"):
        assert p[key].min() >= 0.9 and p[key].max() <= 1.1
    assert p["hue"].abs().max() <= 0.1
    out = gen.render(images, index, p)
    changed = (out != images).any(dim=1).sum(dim=(1, 2)).double()
    # A strip of w×h pixels, rotated and rasterised: at most its area plus a one-pixel border.
    assert (changed <= (p["width"] + 2) * (p["height"] + 2)).all()
    assert changed.mean() > 0.5 * (p["width"] * p["height"]).double().mean()


def test_scramble_cells_are_rotated_or_flipped() -> None:
    gen = get_generator("scramble").parts[0]
    images = batch(3)
    p = gen.sample(images, torch.arange(3), seeded(0))
    assert p["element"].shape == (3, 4, 4)
    assert p["element"].min() >= 1 and p["element"].max() <= 7
    out = gen.render(images, torch.arange(3), p)
    for n in range(3):
        for r in range(4):
            for c in range(4):
                cell = images[n, :, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8]
                e = int(p["element"][n, r, c])
                expected = torch.rot90(cell.flip(-1) if e >= 4 else cell, e % 4, dims=(1, 2))
                assert torch.equal(out[n, :, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8], expected)
    with pytest.raises(ValueError, match="divisible"):
        get_generator("scramble")(batch(2, size=30), seeded(0))


def test_mixup_blend_and_beta() -> None:
    gen = get_generator("mixup").parts[0]
    images = batch(2000, size=4)
    index = torch.arange(len(images))
    p = gen.sample(images, index, seeded(0))
    lam = p["lam"]
    assert lam.min() >= 0 and lam.max() <= 1
    # Beta(0.4, 0.4): mean 1/2, variance 1/(4·1.8) ≈ 0.139, U-shaped.
    assert abs(float(lam.mean()) - 0.5) < 0.03 and abs(float(lam.var()) - 1 / 7.2) < 0.015
    assert ((lam < 0.1) | (lam > 0.9)).float().mean() > 0.3
    assert (p["partner"] != index).all()
    out = gen.render(images, index, p)
    expected = lam[:, None, None, None] * images.double() + (1 - lam[:, None, None, None]) * images[
        p["partner"]
    ].double()
    assert ((out.double() - expected).abs() <= 0.5 + 1e-4).all()


def test_mixup_partner_comes_from_whole_batch() -> None:
    """In a union only some rows use mixup; their partners are drawn from the whole batch."""
    gen = get_generator("mixup").parts[0]
    index = torch.tensor([3] * 200)
    partners = gen.sample(batch(10), index, seeded(0))["partner"]
    assert set(partners.tolist()) == set(range(10)) - {3}
    with pytest.raises(ValueError, match="at least 2"):
        get_generator("mixup")(batch(1), seeded(0))


def test_oe_draws_from_external_set() -> None:
    images = batch(300, size=8)
    external = batch(4, size=8, seed=5)
    out, ids = get_generator("oe", images=external)(images, seeded(0))
    match = (out[:, None] == external[None]).flatten(2).all(dim=2)  # (300, 4)
    assert match.any(dim=1).all()
    counts = match.float().sum(dim=0)
    assert counts.min() > 40  # uniform: 75 each
    with pytest.raises(ValueError, match="oe images"):
        get_generator("oe", images=external)(batch(2), seeded(0))
    with pytest.raises(ValueError, match="uint8"):
        get_generator("oe", images=external.float())


def test_composed_with_oe_routes_images() -> None:
    gen = get_generator("rot90+oe", images=EXTERNAL)
    out, ids = gen(batch(), seeded(0), choice=torch.tensor([0, 1] * 8))
    assert ids.tolist() == [1, 2] * 8
    assert torch.equal(out[0], torch.rot90(batch()[0], 1, dims=(1, 2)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ALL)
def test_cuda_matches_cpu_with_cpu_generator(name: str) -> None:
    cpu_out, cpu_ids = build(name)(batch(), seeded(0))
    gpu_out, gpu_ids = build(name)(batch().cuda(), seeded(0))
    assert gpu_out.is_cuda and gpu_ids.is_cuda
    assert torch.equal(gpu_ids.cpu(), cpu_ids)
    # Same parameters; float rounding (blends, scar coordinates) may differ in a few pixels.
    assert ((gpu_out.cpu().int() - cpu_out.int()).abs() > 1).float().mean() < 0.01
