"""k-NN precision and recall (Kynkäänniemi et al. 2019, "Improved precision and recall metric for assessing
generative models", NeurIPS, §2 eqs. 1-2).

Each set's manifold is approximated by the union of balls around its points, the radius of a point's ball being
the distance to its ``k``-th nearest neighbour in its own set:

- **precision**: fraction of generated points inside the real manifold (fidelity: are samples realistic?);
- **recall**: fraction of real points inside the generated manifold (diversity: is the real variety covered?).

Both are fractions in [0, 1], higher is better. They depend on ``k`` and on the sample sizes, so, like FD, compare
them only at equal ``k`` and equal counts, and read them beside real-vs-real values. The paper uses k = 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluation.neighbours import kth_neighbour_distance
from synth.errors import DataError


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float
    k: int
    n_real: int
    n_generated: int

    def as_dict(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "k": self.k,
                "n_real": self.n_real, "n_generated": self.n_generated}


def manifold_coverage(query: np.ndarray, support: np.ndarray, k: int = 3, *, batch_size: int = 512) -> np.ndarray:
    """``(N,)`` bool: is each ``query`` row inside the k-NN manifold of ``support`` (rows ``(M, ...)``)?

    Row ``q`` is inside when some support point ``s`` has ``|q - s| <= r_k(s)``, ``r_k(s)`` being the distance
    from ``s`` to its ``k``-th nearest other support point. Exact; evaluated in blocks of queries.
    """
    q = np.asarray(query, dtype=np.float64).reshape(len(query), -1)
    s = np.asarray(support, dtype=np.float64).reshape(len(support), -1)
    radii = kth_neighbour_distance(s, k, batch_size=batch_size)  # (M,)
    s_sq = np.einsum("md,md->m", s, s)
    inside = np.empty(len(q), dtype=bool)
    for start in range(0, len(q), batch_size):
        qb = q[start : start + batch_size]
        sq = np.einsum("nd,nd->n", qb, qb)[:, None] + s_sq[None, :] - 2.0 * qb @ s.T  # (b, M)
        inside[start : start + len(qb)] = (np.sqrt(np.clip(sq, 0.0, None)) <= radii[None, :]).any(axis=1)
    return inside


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int = 3, *, batch_size: int = 512) -> PrecisionRecall:
    """k-NN precision and recall of ``generated (N_g, D)`` against ``real (N_r, D)`` features.

    Both sets need more than ``k`` rows. Use the same feature space (and ideally equal counts) as the FD.
    """
    real, generated = np.asarray(real), np.asarray(generated)
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise DataError(f"features must be (N, D) with one D, got {real.shape} and {generated.shape}")
    if min(len(real), len(generated)) <= k:
        raise DataError(f"k={k} needs more than {k} records per set, got {len(real)} real, {len(generated)} generated")
    precision = manifold_coverage(generated, real, k, batch_size=batch_size).mean()
    recall = manifold_coverage(real, generated, k, batch_size=batch_size).mean()
    return PrecisionRecall(float(precision), float(recall), k, len(real), len(generated))

