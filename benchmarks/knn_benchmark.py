"""Time exact top-k cosine search: anobench's torch path vs faiss IndexFlatIP vs scikit-learn.

Queries and banks are random unit vectors (float32). Each configuration is timed ``--repeats``
times and the best time is reported; index construction is excluded for faiss and torch (both
are a copy of the bank) and included for scikit-learn's brute-force ``NearestNeighbors`` (its
fit only stores the data). Results of torch and faiss are checked to agree.

Usage:
    python benchmarks/knn_benchmark.py                 # the full grid, 1 repeat
    python benchmarks/knn_benchmark.py --repeats 3 --no-sklearn
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from anobench.knn import DEFAULT_MAX_CHUNK_ELEMENTS, ExactIndex, faiss_available, native_bf16_matmul


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def sklearn_search(bank: np.ndarray, queries: np.ndarray, k: int) -> object:
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="cosine").fit(bank)
    return nn.kneighbors(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--banks", type=int, nargs="+", default=[5_000, 50_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 128])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--repeats", type=int, default=1, help="report the best of N runs")
    parser.add_argument("--max-chunk-elements", type=int, default=DEFAULT_MAX_CHUNK_ELEMENTS)
    parser.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn (slowest)")
    args = parser.parse_args()

    has_faiss = faiss_available()
    if has_faiss:
        import faiss

        threads = f"faiss omp threads {faiss.omp_get_max_threads()}"
    else:
        threads = "faiss not installed"
    prefilter = "bfloat16 prefilter" if native_bf16_matmul(torch.device("cpu")) else "float32 only"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {prefilter}; {threads}")
    print(f"{args.queries} queries, best of {args.repeats}, times in seconds")
    header = (
        f"{'bank':>7} {'dim':>4} {'k':>2} {'torch':>8} {'faiss':>8} {'sklearn':>8}"
        f" {'torch/faiss':>11} {'sklearn/torch':>13}"
    )
    print(header)
    rng = np.random.default_rng(0)
    for n_bank in args.banks:
        for dim in args.dims:
            bank, queries = unit(rng, n_bank, dim), unit(rng, args.queries, dim)
            torch_index = ExactIndex(bank, "torch", args.max_chunk_elements)
            faiss_index = ExactIndex(bank, "faiss") if has_faiss else None
            q = torch.from_numpy(queries)
            for k in args.ks:
                t_torch, (ts, ti) = best_time(  # type: ignore[misc]
                    partial(torch_index.search, q, k), args.repeats
                )
                t_faiss = float("nan")
                if faiss_index is not None:
                    t_faiss, (fs, fi) = best_time(  # type: ignore[misc]
                        partial(faiss_index.search, q, k), args.repeats
                    )
                    agree = float((ti == fi).float().mean())
                    max_diff = float((ts - fs).abs().max())
                    if agree < 0.999 or max_diff > 1e-5:
                        raise AssertionError(
                            f"torch and faiss disagree: {agree:.4f} equal indices,"
                            f" max similarity difference {max_diff:.2e}"
                        )
                t_sk = float("nan")
                if not args.no_sklearn:
                    t_sk, _ = best_time(partial(sklearn_search, bank, queries, k), args.repeats)
                print(
                    f"{n_bank:>7} {dim:>4} {k:>2} {t_torch:>8.3f} {t_faiss:>8.3f} {t_sk:>8.3f}"
                    f" {t_torch / t_faiss:>11.2f} {t_sk / t_torch:>13.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
