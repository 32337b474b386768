"""Batched exact nearest-neighbour search in Euclidean space, shared by :mod:`evaluation.manifold` and
:mod:`evaluation.memorisation`.

Distances are found blockwise from ``|a|^2 + |b|^2 - 2 a.b`` (one matrix product per block of queries), so 10,000
queries against 5,000 references of 12,000 dimensions never hold more than ``batch_size x M`` distances. The
expansion loses precision when two vectors nearly coincide, which is exactly the case memorisation looks for, so
the distances returned are recomputed directly (``|a - b|``, float64) for the neighbours found.
"""

from __future__ import annotations

import numpy as np

from synth.errors import DataError


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 2:
        raise DataError(f"{name} must be (N, D) or (N, ...), got shape {x.shape}")
    return x.reshape(x.shape[0], -1)


def nearest_neighbours(
    query: np.ndarray,
    reference: np.ndarray,
    *,
    k: int = 1,
    batch_size: int = 512,
    exclude_self: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest reference rows of every query row.

    Args:
        query: ``(N, ...)``, flattened to ``(N, D)``.
        reference: ``(M, ...)``, flattened to ``(M, D)``.
        k: neighbours per query, nearest first.
        batch_size: queries per block; memory is about ``batch_size * M * 4`` bytes beside the inputs.
        exclude_self: ``query`` *is* ``reference`` and row ``i`` must not count as its own neighbour.

    Returns:
        ``(distances (N, k) float64, indices (N, k) int64)``, Euclidean, in the input's units.
    """
    q = _as_matrix(query, "query")
    r = _as_matrix(reference, "reference")
    if q.shape[1] != r.shape[1]:
        raise DataError(f"query has {q.shape[1]} dimensions per row, reference {r.shape[1]}")
    available = r.shape[0] - (1 if exclude_self else 0)
    if not 1 <= k <= available:
        raise DataError(f"k={k} neighbours asked of a reference set of {r.shape[0]} rows (exclude_self={exclude_self})")
    if exclude_self and q.shape[0] != r.shape[0]:
        raise DataError("exclude_self needs query and reference to be the same rows")
    # float32 for the matrix products (speed, memory); float64 when the input is float64 already.
    work = np.float64 if q.dtype == np.float64 or r.dtype == np.float64 else np.float32
    r_w = r.astype(work, copy=False)
    r_sq = np.einsum("md,md->m", r_w, r_w)
    dist = np.empty((q.shape[0], k), dtype=np.float64)
    index = np.empty((q.shape[0], k), dtype=np.int64)
    for start in range(0, q.shape[0], batch_size):
        q_b = q[start : start + batch_size].astype(work, copy=False)
        sq = np.einsum("nd,nd->n", q_b, q_b)[:, None] + r_sq[None, :] - 2.0 * (q_b @ r_w.T)  # (b, M)
        if exclude_self:
            rows = np.arange(q_b.shape[0])
            sq[rows, start + rows] = np.inf
        part = np.argpartition(sq, k - 1, axis=1)[:, :k] if k < sq.shape[1] else np.tile(np.arange(k), (len(sq), 1))
        order = np.take_along_axis(sq, part, axis=1).argsort(axis=1, kind="stable")
        idx = np.take_along_axis(part, order, axis=1)  # (b, k), nearest first
        exact = q[start : start + batch_size, None, :].astype(np.float64) - r[idx].astype(np.float64)  # (b, k, D)
        d = np.sqrt(np.einsum("bkd,bkd->bk", exact, exact))
        # Re-sort on the exact distances: ties broken by rounding in the expansion are broken again here.
        resort = d.argsort(axis=1, kind="stable")
        dist[start : start + len(q_b)] = np.take_along_axis(d, resort, axis=1)
        index[start : start + len(q_b)] = np.take_along_axis(idx, resort, axis=1)
    return dist, index


def kth_neighbour_distance(x: np.ndarray, k: int, *, batch_size: int = 512) -> np.ndarray:
    """``(N,)`` distance from each row of ``x (N, ...)`` to its ``k``-th nearest *other* row."""
    dist, _ = nearest_neighbours(x, x, k=k, batch_size=batch_size, exclude_self=True)
    return dist[:, k - 1]
