"""Exact inner-product (cosine on unit vectors) top-k search.

Two backends return the same neighbours (ties aside) and similarities within float32 rounding:

- ``"torch"``: a chunked float32 matrix product and :func:`torch.topk` on the bank's device;
  each similarity block holds at most ``max_chunk_elements`` entries, so memory stays bounded
  for any number of queries and any bank size.
- ``"faiss"``: ``faiss.IndexFlatIP`` (CPU, optional dependency ``faiss-cpu``).

``backend="auto"`` uses faiss when it is importable and the bank is on the CPU, torch otherwise.
Vectors are searched as given: normalise them first for cosine similarity.

Example:
    >>> import torch
    >>> from anobench.knn import ExactIndex
    >>> bank = torch.nn.functional.normalize(torch.randn(100, 8), dim=1)
    >>> sims, idx = ExactIndex(bank, backend="torch").search(bank[:3], k=1)
    >>> idx[:, 0].tolist()
    [0, 1, 2]
    >>> ExactIndex(bank, backend="torch").search_self(k=1)[1][:3, 0].tolist() != [0, 1, 2]
    True
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import numpy as np
import torch

Backend = Literal["auto", "torch", "faiss"]

DEFAULT_MAX_CHUNK_ELEMENTS = 1 << 24
"""Default cap on one similarity block: 16 Mi float32 entries = 64 MiB."""

_MIN_ROWS = 1024
"""Smallest query block worth a matrix product (when the cap allows it)."""


def faiss_available() -> bool:
    """Whether the optional ``faiss`` package can be imported."""
    return importlib.util.find_spec("faiss") is not None


def _as_matrix(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach()
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (rows, dim) array, got {tuple(t.shape)}")
    return t.to(torch.float32).contiguous()


class ExactIndex:
    """An exact top-k inner-product index over a fixed bank of vectors.

    Args:
        bank: (N, D) vectors to search; stored as float32 (normalise first for cosine).
        backend: ``"auto"``, ``"torch"`` or ``"faiss"``.
        max_chunk_elements: Cap on the entries of one similarity block (torch backend).

    Raises:
        ValueError: On a bad bank shape, unknown backend or a non-positive chunk cap.
        ImportError: If ``backend="faiss"`` and faiss is not installed.
    """

    def __init__(
        self,
        bank: np.ndarray | torch.Tensor,
        backend: Backend = "auto",
        max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
    ) -> None:
        if backend not in ("auto", "torch", "faiss"):
            raise ValueError(f"backend must be 'auto', 'torch' or 'faiss', got {backend!r}")
        if max_chunk_elements < 1:
            raise ValueError(f"max_chunk_elements must be >= 1, got {max_chunk_elements}")
        self.bank = _as_matrix(bank, "bank")
        self.max_chunk_elements = max_chunk_elements
        if backend == "auto":
            use_faiss = faiss_available() and self.bank.device.type == "cpu"
            backend = "faiss" if use_faiss else "torch"
        self.backend: Literal["torch", "faiss"] = backend
        self._faiss_index = None
        if backend == "faiss":
            import faiss  # optional dependency

            self._faiss_index = faiss.IndexFlatIP(self.bank.shape[1])
            self._faiss_index.add(self.bank.cpu().numpy())

    @property
    def size(self) -> int:
        """Number of vectors in the bank."""
        return int(self.bank.shape[0])

    def search(
        self, queries: np.ndarray | torch.Tensor, k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` largest inner products of each query with the bank.

        Returns:
            ``(similarities, indices)``: (M, k) float32 and int64 tensors on the bank's device,
            each row sorted by decreasing similarity.

        Raises:
            ValueError: If ``k`` is not in [1, N] or the query width differs from the bank's.
        """
        q = self._check_queries(queries)
        self._check_k(k, self.size)
        return self._search(q, k, exclude_self=False)

    def search_self(
        self, k: int, queries: np.ndarray | torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Leave-one-out search: query row i never returns bank index i.

        Args:
            k: Neighbours per query, in [1, N - 1].
            queries: (N, D) vectors whose row i stands for bank row i (e.g. another view of the
                same image); ``None`` searches the bank against itself.

        Only the index is excluded; a duplicate of row i stored elsewhere in the bank is an
        ordinary neighbour.

        Raises:
            ValueError: If ``k`` is not in [1, N - 1] or the queries' shape is not the bank's.
        """
        self._check_k(k, self.size - 1)
        if queries is None:
            return self._search(self.bank, k, exclude_self=True)
        q = self._check_queries(queries)
        if q.shape[0] != self.size:
            raise ValueError(
                f"exclude_self needs one query per bank row: {q.shape[0]} queries,"
                f" {self.size} bank rows"
            )
        return self._search(q, k, exclude_self=True)

    def _check_queries(self, queries: np.ndarray | torch.Tensor) -> torch.Tensor:
        q = _as_matrix(queries, "queries")
        if q.shape[1] != self.bank.shape[1]:
            raise ValueError(
                f"queries have {q.shape[1]} dimensions, the bank has {self.bank.shape[1]}"
            )
        return q

    @staticmethod
    def _check_k(k: int, limit: int) -> None:
        if not 1 <= k <= limit:
            raise ValueError(f"k must be in [1, {limit}] for this bank, got {k}")

    def _search(
        self, q: torch.Tensor, k: int, exclude_self: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.backend == "faiss":
            return self._search_faiss(q, k, exclude_self)
        return self._search_torch(q.to(self.bank.device), k, exclude_self)

    def _search_torch(
        self, q: torch.Tensor, k: int, exclude_self: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, cap = self.size, self.max_chunk_elements
        # Row blocks of at least _MIN_ROWS queries keep the matrix products efficient; the bank
        # is split into column blocks when a full row block would exceed the cap.
        rows = max(1, min(q.shape[0], cap, max(_MIN_ROWS, cap // n)))
        cols = max(1, min(n, cap // rows))
        out_sims = torch.empty(q.shape[0], k, dtype=torch.float32, device=q.device)
        out_idx = torch.empty(q.shape[0], k, dtype=torch.int64, device=q.device)
        # One reused block buffer: a fresh large allocation per block costs page faults on CPU.
        buffer = torch.empty(rows * cols, dtype=torch.float32, device=q.device)
        for r0 in range(0, q.shape[0], rows):
            r1 = min(r0 + rows, q.shape[0])
            parts_s, parts_i = [], []
            for c0 in range(0, n, cols):
                c1 = min(c0 + cols, n)
                block = buffer[: (r1 - r0) * (c1 - c0)].view(r1 - r0, c1 - c0)
                torch.mm(q[r0:r1], self.bank[c0:c1].T, out=block)
                if exclude_self:
                    self._mask_diagonal(block, r0, r1, c0, c1)
                if k == 1:  # max is cheaper than topk
                    s, i = block.max(dim=1, keepdim=True)
                else:
                    s, i = torch.topk(block, min(k, c1 - c0), dim=1)
                parts_s.append(s)
                parts_i.append(i + c0)
            if len(parts_s) == 1:
                out_sims[r0:r1], out_idx[r0:r1] = parts_s[0], parts_i[0]
            else:  # merge the per-column-block candidates
                cand_s, cand_i = torch.cat(parts_s, dim=1), torch.cat(parts_i, dim=1)
                best_s, pos = torch.topk(cand_s, k, dim=1)
                out_sims[r0:r1], out_idx[r0:r1] = best_s, torch.gather(cand_i, 1, pos)
        return out_sims, out_idx

    @staticmethod
    def _mask_diagonal(block: torch.Tensor, r0: int, r1: int, c0: int, c1: int) -> None:
        """Set the entries (row i, column i) that fall inside this block to -inf."""
        lo, hi = max(r0, c0), min(r1, c1)
        if lo < hi:
            diag = torch.arange(lo, hi, device=block.device)
            block[diag - r0, diag - c0] = float("-inf")

    def _search_faiss(
        self, q: torch.Tensor, k: int, exclude_self: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert self._faiss_index is not None
        device = self.bank.device
        extra = 1 if exclude_self else 0
        sims, idx = self._faiss_index.search(q.cpu().numpy(), k + extra)
        if exclude_self:
            # Drop index i from row i; if i is not among the k + 1 best, drop the last entry.
            is_self = idx == np.arange(idx.shape[0])[:, None]
            drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
            keep = np.ones_like(idx, dtype=bool)
            keep[np.arange(idx.shape[0]), drop] = False
            sims = sims[keep].reshape(-1, k)
            idx = idx[keep].reshape(-1, k)
        return (
            torch.from_numpy(np.ascontiguousarray(sims)).to(device),
            torch.from_numpy(np.ascontiguousarray(idx)).to(torch.int64).to(device),
        )


def knn_search(
    queries: np.ndarray | torch.Tensor,
    bank: np.ndarray | torch.Tensor,
    k: int,
    *,
    exclude_self: bool = False,
    backend: Backend = "auto",
    max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-shot exact top-k inner-product search (see :class:`ExactIndex`).

    Args:
        queries: (M, D) query vectors.
        bank: (N, D) bank vectors.
        k: Neighbours per query.
        exclude_self: Query row i stands for bank row i (M = N; usually the bank itself);
            row i never returns index i (leave-one-out).
        backend: ``"auto"``, ``"torch"`` or ``"faiss"``.
        max_chunk_elements: Cap on the entries of one similarity block (torch backend).

    Returns:
        ``(similarities, indices)``, (M, k) float32 and int64, sorted by decreasing similarity.

    Raises:
        ValueError: If ``exclude_self`` is set and the queries are not one per bank row, or on
            an invalid ``k``, backend or shape.
    """
    index = ExactIndex(bank, backend=backend, max_chunk_elements=max_chunk_elements)
    if exclude_self:
        return index.search_self(k, queries)
    return index.search(queries, k)
