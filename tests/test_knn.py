"""Exact kNN search: torch and faiss backends against a brute-force loop reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anobench.knn import ExactIndex, faiss_available, knn_search, native_bf16_matmul

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss-cpu is not installed")


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def loop_topk(
    queries: np.ndarray, bank: np.ndarray, k: int, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per query: float64 dot products with every bank row, sorted descending, first k kept."""
    sims = np.zeros((len(queries), k))
    idx = np.zeros((len(queries), k), dtype=np.int64)
    for i, q in enumerate(queries.astype(np.float64)):
        cands = [
            (float(np.dot(q, b)), j)
            for j, b in enumerate(bank.astype(np.float64))
            if not (exclude_self and j == i)
        ]
        cands.sort(key=lambda c: -c[0])
        for r, (s, j) in enumerate(cands[:k]):
            sims[i, r], idx[i, r] = s, j
    return sims, idx


@pytest.mark.parametrize("prefilter", [False, True])
@pytest.mark.parametrize("max_chunk_elements", [1 << 24, 7 * 50, 37])
@pytest.mark.parametrize("k", [1, 5])
def test_torch_matches_loops(k: int, max_chunk_elements: int, prefilter: bool) -> None:
    # 37 forces column chunks smaller than the bank (merging partial top-k), 350 row chunks.
    rng = np.random.default_rng(k)
    bank, queries = unit(rng, 50, 16), unit(rng, 23, 16)
    index = ExactIndex(bank, "torch", max_chunk_elements, prefilter=prefilter)
    sims, idx = index.search(torch.from_numpy(queries), k)
    ref_s, ref_i = loop_topk(queries, bank, k)
    assert sims.dtype == torch.float32 and idx.dtype == torch.int64
    assert sims.shape == idx.shape == (23, k)
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    np.testing.assert_allclose(sims.numpy(), ref_s, atol=1e-6)


@pytest.mark.parametrize("max_chunk_elements", [1 << 24, 64, 5])
@pytest.mark.parametrize("backend", ["torch", "torch-prefilter", pytest.param("faiss", marks=needs_faiss)])
def test_exclude_self_is_leave_one_out(backend: str, max_chunk_elements: int) -> None:
    rng = np.random.default_rng(3)
    bank = unit(rng, 40, 8)
    prefilter = backend == "torch-prefilter"
    backend = backend.removesuffix("-prefilter")
    index = ExactIndex(bank, backend, max_chunk_elements, prefilter=prefilter)  # type: ignore[arg-type]
    sims, idx = index.search_self(k=4)
    ref_s, ref_i = loop_topk(bank, bank, 4, exclude_self=True)
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    np.testing.assert_allclose(sims.numpy(), ref_s, atol=1e-6)
    assert not (idx.numpy() == np.arange(40)[:, None]).any()
    _, i2 = knn_search(bank, bank, 4, exclude_self=True, backend=backend)  # type: ignore[arg-type]
    np.testing.assert_array_equal(i2.numpy(), ref_i)


@pytest.mark.parametrize("backend", ["torch", pytest.param("faiss", marks=needs_faiss)])
def test_exclude_self_keeps_duplicates_of_the_row(backend: str) -> None:
    rng = np.random.default_rng(4)
    bank = unit(rng, 10, 6)
    bank[7] = bank[2]
    sims, idx = ExactIndex(bank, backend).search_self(k=1)  # type: ignore[arg-type]
    assert idx[2, 0] == 7 and idx[7, 0] == 2
    assert sims[2, 0] == pytest.approx(1.0, abs=1e-6)


@needs_faiss
@pytest.mark.parametrize(("n", "d", "k"), [(2000, 128, 5), (500, 512, 1)])
def test_faiss_and_torch_agree(n: int, d: int, k: int) -> None:
    rng = np.random.default_rng(n)
    bank, queries = unit(rng, n, d), unit(rng, 300, d)
    ts, ti = knn_search(queries, bank, k, backend="torch", max_chunk_elements=100_000)
    fs, fi = knn_search(queries, bank, k, backend="faiss")
    np.testing.assert_array_equal(ti.numpy(), fi.numpy())
    np.testing.assert_allclose(ts.numpy(), fs.numpy(), atol=1e-5)
    ts, ti = ExactIndex(bank, "torch").search_self(k)
    fs, fi = ExactIndex(bank, "faiss").search_self(k)
    np.testing.assert_array_equal(ti.numpy(), fi.numpy())
    np.testing.assert_allclose(ts.numpy(), fs.numpy(), atol=1e-5)


@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("k", [1, 3])
def test_prefilter_is_exact_where_bfloat16_cannot_tell_vectors_apart(k: int, exclude_self: bool) -> None:
    """30 vectors equal in bfloat16 but not in float32, among random ones: the bfloat16 search
    keeps at most k + 8 of the tied 30 (then k + 64 of 200), so only the certification and its float32 re-search can
    return the true best (a prefilter that trusted its candidates fails here)."""
    rng = np.random.default_rng(11 + k)
    bank = unit(rng, 200, 32)
    base = torch.from_numpy(bank[0]).bfloat16().float().numpy()
    bank[:30] = base + rng.uniform(-1, 1, size=(30, 32)).astype(np.float32) * np.abs(base) * 2.0**-10
    queries = bank if exclude_self else bank[:30] + rng.normal(scale=1e-3, size=(30, 32)).astype(np.float32)
    index = ExactIndex(bank, "torch", prefilter=True)
    assert index._prefilter is not None
    sims, idx = index.search_self(k) if exclude_self else index.search(queries, k)
    ref_s, ref_i = loop_topk(queries, bank, k, exclude_self=exclude_self)
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    np.testing.assert_allclose(sims.numpy(), ref_s, atol=1e-6)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 50.0])
def test_prefilter_is_exact_for_any_vector_norms(scale: float) -> None:
    rng = np.random.default_rng(12)
    bank = (rng.normal(size=(300, 24)) * rng.uniform(0.1, 2, size=(300, 1)) * scale).astype(np.float32)
    queries = (rng.normal(size=(40, 24)) * scale).astype(np.float32)
    sims, idx = ExactIndex(bank, "torch", prefilter=True).search(queries, 4)
    ref_s, ref_i = loop_topk(queries, bank, 4)
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    np.testing.assert_allclose(sims.numpy(), ref_s, rtol=1e-5, atol=1e-6 * scale * scale)


def test_prefilter_default_follows_the_cpu() -> None:
    bank = np.eye(4, dtype=np.float32)
    assert (ExactIndex(bank, "torch")._prefilter is not None) == native_bf16_matmul(torch.device("cpu"))
    assert ExactIndex(bank, "torch", prefilter=False)._prefilter is None


def test_auto_backend_choice() -> None:
    index = ExactIndex(np.eye(3, dtype=np.float32))
    assert index.backend == ("faiss" if faiss_available() else "torch")


def test_float64_input_and_device() -> None:
    rng = np.random.default_rng(5)
    bank = torch.from_numpy(unit(rng, 30, 4)).double()
    sims, idx = knn_search(bank[:5], bank, 1, backend="torch")
    assert sims.dtype == torch.float32 and sims.device == bank.device
    assert idx[:, 0].tolist() == [0, 1, 2, 3, 4]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(6)
    bank, queries = unit(rng, 3000, 64), unit(rng, 500, 64)
    cs, ci = knn_search(queries, torch.from_numpy(bank).cuda(), 5, backend="auto")
    assert cs.device.type == "cuda"
    ref_s, ref_i = knn_search(queries, bank, 5, backend="torch")
    np.testing.assert_array_equal(ci.cpu().numpy(), ref_i.numpy())
    np.testing.assert_allclose(cs.cpu().numpy(), ref_s.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda b: ExactIndex(b, "torch").search(b, 0), "k must be"),
        (lambda b: ExactIndex(b, "torch").search(b, 11), "k must be"),
        (lambda b: ExactIndex(b, "torch").search_self(10), "k must be"),
        (lambda b: ExactIndex(b, "torch").search(b[:, :3], 1), "dimensions"),
        (lambda b: ExactIndex(b, "annoy"), "backend"),  # type: ignore[arg-type]
        (lambda b: ExactIndex(b, "torch", 0), "max_chunk_elements"),
        (lambda b: ExactIndex(b[0], "torch"), "2-D"),
        (lambda b: knn_search(b[:4], b, 1, exclude_self=True), "exclude_self"),
    ],
)
def test_invalid_arguments_raise(call, match) -> None:  # type: ignore[no-untyped-def]
    bank = np.eye(10, 5, dtype=np.float32)
    with pytest.raises(ValueError, match=match):
        call(bank)


def test_inputs_that_require_grad_are_detached() -> None:
    bank = torch.nn.functional.normalize(torch.randn(20, 4), dim=1).requires_grad_()
    sims, idx = knn_search(bank, bank, 1, backend="torch")
    assert not sims.requires_grad
    assert idx[:, 0].tolist() == list(range(20))
