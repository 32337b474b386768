"""Fréchet distance between two sets of feature vectors, always reported next to its real-vs-real floor.

The Fréchet (2-Wasserstein) distance between the Gaussians fitted to two feature sets (Dowson & Landau 1982;
used as FID by Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash
equilibrium", eq. 6)::

    FD = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

Units are those of the features squared (mV^2 for the raw-signal features below); lower is better, 0 for equal
Gaussians. An FD alone means nothing (EVALUATION.md): it is biased upwards by finite samples, and its scale is set
by the feature space, so :func:`fd_with_floor` always measures FD(real train, real test) at the same sample count
with the same features, both with bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.bootstrap import Interval, percentile_interval
from synth.data.leads import LEADS_12
from synth.errors import DataError


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` (float64) of ``features (N, D)``, N >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise DataError(f"features must be (N, D) with N >= 2, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise DataError("features contain NaN or inf", hint="check the generator's outputs for non-finite samples")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance, negative round-off eigenvalues clipped to 0."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """FD between N(mu1, sigma1) and N(mu2, sigma2); means ``(D,)``, covariances ``(D, D)``.

    ``tr (S_1 S_2)^(1/2)`` is computed as the sum of square roots of the eigenvalues of the symmetric PSD matrix
    ``S_1^(1/2) S_2 S_1^(1/2)``, which has the same spectrum as ``S_1 S_2``. Unlike ``scipy.linalg.sqrtm`` of the
    non-symmetric product, this needs no ``eps`` added to singular covariances (N < D, constant features) and
    produces no imaginary part to discard.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise DataError(f"mismatched statistics: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    tr_sqrt = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = mu1 - mu2
    fd = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt
    return float(max(fd, 0.0))  # round-off can leave -1e-12 for identical sets


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """FD between the Gaussians fitted to ``x (N, D)`` and ``y (M, D)``; units of the features squared."""
    return frechet_distance_from_stats(*gaussian_stats(x), *gaussian_stats(y))


@dataclass(frozen=True)
class FDWithFloor:
    """FD(generated, real test) beside FD(real train, real test), both at ``n`` records per set.

    ``generated`` and ``floor`` hold the full-subsample FD and its bias-corrected bootstrap interval. ``ratio`` is
    ``generated / floor``: 1 means indistinguishable from a fresh real sample at this sample size.
    """

    generated: Interval
    floor: Interval
    n: int
    n_boot: int

    @property
    def ratio(self) -> float:
        return self.generated.estimate / self.floor.estimate if self.floor.estimate > 0 else float("inf")

    def as_dict(self) -> dict:
        return {"fd": self.generated.as_dict(), "fd_floor": self.floor.as_dict(), "ratio": self.ratio,
                "n": self.n, "n_boot": self.n_boot}


def fd_with_floor(
    generated: np.ndarray,
    real_test: np.ndarray,
    real_train: np.ndarray,
    *,
    n: int | None = None,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> FDWithFloor:
    """FD(generated, test) and FD(train, test) at the same sample count ``n``, with bootstrap intervals.

    Args:
        generated, real_test, real_train: features ``(N_*, D)`` from one extractor.
        n: records drawn (without replacement) from each set; default the smallest set size. Both distances use
            the *same* ``n`` test records, because FD's finite-sample bias depends on ``n``.
        n_boot: bootstrap replicates; each resamples the three subsets independently with replacement.
        seed: fixes the subsampling and the bootstrap.
        level: confidence level of the intervals.

    The intervals are bias-corrected percentile intervals (:func:`evaluation.bootstrap.percentile_interval`):
    resampling with replacement inflates FD, so the raw replicates are shifted back by their mean excess first.
    """
    sets = {"generated": generated, "real_test": real_test, "real_train": real_train}
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in sets.items()}
    dims = {a.shape[1] if a.ndim == 2 else None for a in arrays.values()}
    if len(dims) != 1 or None in dims:
        raise DataError(f"features must be (N, D) with one D, got {[a.shape for a in arrays.values()]}")
    smallest = min(len(a) for a in arrays.values())
    n = smallest if n is None else int(n)
    if not 2 <= n <= smallest:
        raise DataError(f"n={n} records per set, but the sets have {[len(a) for a in arrays.values()]}",
                        hint="choose n no larger than the smallest set, at least 2")
    rng = np.random.default_rng(seed)
    gen, test, train = (a[rng.choice(len(a), n, replace=False)] for a in arrays.values())
    fd_gen, fd_floor = frechet_distance(gen, test), frechet_distance(train, test)
    reps = np.empty((n_boot, 2))
    for b in range(n_boot):
        gi, ti, ri = rng.integers(0, n, size=(3, n))
        reps[b] = frechet_distance(gen[gi], test[ti]), frechet_distance(train[ri], test[ti])
    ci = dict(level=level, bias_correct=True, lower_bound=0.0)
    return FDWithFloor(percentile_interval(reps[:, 0], fd_gen, **ci), percentile_interval(reps[:, 1], fd_floor, **ci),
                       n=n, n_boot=n_boot)


class LeadPCA:
    """Per-lead PCA of raw signals: lead ``c`` of a record ``(T,)`` becomes ``pca_dim`` principal-component scores.

    Fit it on real training records only; the same projection then serves generated, test and train records. The
    projection is orthonormal, so scores stay in mV and FD in this space is in mV^2.
    """

    def __init__(self, mean: np.ndarray, components: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float64)  # (C, T)
        self.components = np.asarray(components, dtype=np.float64)  # (C, pca_dim, T)

    @property
    def pca_dim(self) -> int:
        return int(self.components.shape[1])

    @classmethod
    def fit(cls, x: np.ndarray, pca_dim: int) -> LeadPCA:
        """Fit on ``x (N, C, T)`` mV; ``pca_dim <= min(N, T)``."""
        x = _check_signals(x)
        n, c, t = x.shape
        if not 1 <= pca_dim <= min(n, t):
            raise DataError(f"pca_dim={pca_dim} must be between 1 and min(N={n}, T={t})")
        mean = np.empty((c, t))
        comps = np.empty((c, pca_dim, t))
        for lead in range(c):  # one lead at a time in float64: a whole (N, 12, T) copy would not fit for big N
            xl = np.asarray(x[:, lead, :], dtype=np.float64)
            mean[lead] = xl.mean(axis=0)
            _, _, vt = np.linalg.svd(xl - mean[lead], full_matrices=False)  # vt (min(N, T), T)
            v = vt[:pca_dim]
            # SVD signs are arbitrary; fix them (largest loading positive) so a seed gives the same features.
            sign = np.sign(v[np.arange(pca_dim), np.abs(v).argmax(axis=1)])
            comps[lead] = v * sign[:, None]
        return cls(mean, comps)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``x (N, C, T)`` mV -> scores ``(N, C, pca_dim)`` mV."""
        x = _check_signals(x)
        if x.shape[1:] != self.mean.shape:
            raise DataError(f"signals of shape {x.shape[1:]} for a PCA fitted on {self.mean.shape}")
        out = np.empty((x.shape[0], x.shape[1], self.pca_dim))
        for lead in range(x.shape[1]):
            out[:, lead] = (np.asarray(x[:, lead, :], dtype=np.float64) - self.mean[lead]) @ self.components[lead].T
        return out


def _check_signals(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3:
        raise DataError(f"signals must be (N, C, T), got shape {x.shape}")
    if not all(np.isfinite(x[i : i + 256]).all() for i in range(0, len(x), 256)):
        raise DataError("signals contain NaN or inf", hint="check the generator's outputs for non-finite samples")
    return x


def raw_signal_features(x: np.ndarray, pca_dim: int | None = None, *, fit_on: np.ndarray | LeadPCA) -> np.ndarray:
    """Per-lead PCA scores ``(N, C, pca_dim)`` in mV of signals ``x (N, C, T)``.

    ``fit_on`` is either a fitted :class:`LeadPCA` or the real *training* records ``(M, C, T)`` to fit one on
    (then ``pca_dim`` is required). Never fit on generated or test records: the feature space must not depend on
    what is being measured.
    """
    if isinstance(fit_on, LeadPCA):
        if pca_dim is not None and pca_dim != fit_on.pca_dim:
            raise DataError(f"pca_dim={pca_dim} but the given LeadPCA has {fit_on.pca_dim} components")
        return fit_on.transform(x)
    if pca_dim is None:
        raise DataError("pca_dim is required when fitting the PCA on training records")
    return LeadPCA.fit(fit_on, pca_dim).transform(x)


def per_lead_fd_with_floor(
    generated: np.ndarray,
    real_test: np.ndarray,
    real_train: np.ndarray,
    *,
    pca_dim: int = 16,
    fit_on: np.ndarray | None = None,
    leads: Sequence[str] = LEADS_12,
    n: int | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, FDWithFloor]:
    """Raw-signal FD per lead (mV^2) with its floor: ``{lead: FDWithFloor}``.

    Signals are ``(N, C, T)`` mV with channels named by ``leads``. The PCA is fitted on ``fit_on`` (default
    ``real_train``). Fitting it on records disjoint from the ``real_train`` ones used for the floor is cleaner: the
    floor then uses out-of-sample projections like the generated records do.
    """
    if len(leads) != np.shape(real_train)[1]:
        raise DataError(f"{len(leads)} lead names for signals with {np.shape(real_train)[1]} channels")
    pca = LeadPCA.fit(real_train if fit_on is None else fit_on, pca_dim)
    feats = [pca.transform(a) for a in (generated, real_test, real_train)]  # each (N, C, pca_dim)
    return {name: fd_with_floor(*(f[:, c] for f in feats), n=n, n_boot=n_boot, seed=seed)
            for c, name in enumerate(leads)}
