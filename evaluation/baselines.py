"""Classic baselines, run beside every model with the same metrics (EVALUATION.md, "Classic baselines").

- ``baseline:real-train`` (:func:`real_train_baseline`): real training records as if generated. The floor of the
  distribution metrics: no generator can be expected to beat fresh real data.
- ``baseline:ecgsyn`` (:func:`ecgsyn_baseline`): the ECGSYN dynamical model (McSharry et al. 2003, IEEE TBME
  50(3):289-294) in NeuroKit2's 12-lead variant, at the requested heart rate.
- ``baseline:nearest`` (:class:`NearestNeighbourGenerator`): the training record whose labels / report are
  closest to the prompt. A text- or label-conditioned generator that cannot beat copying has learned nothing.
- ``baseline:linear`` (:class:`LinearLeadReconstructor`): least-squares lead reconstruction from the given leads,
  fitted on the training folds (the classic derived-lead systems, e.g. Dower's EASI transform, are linear too).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from synth.data.leads import LEADS_12, canonical_leads
from synth.data.transforms import resample
from synth.errors import DataError


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# -- real-train --------------------------------------------------------------------------------------------------


def real_train_baseline(
    train: np.ndarray, n: int, *, seed: int | np.random.Generator | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` real training records ``(n, C, T)`` and their indices ``(n,)`` into ``train (M, C, T)``.

    Drawn without replacement when ``n <= M`` (with replacement beyond, as a generator would repeat itself).
    """
    train = np.asarray(train)
    if train.ndim != 3 or len(train) == 0:
        raise DataError(f"training records must be a non-empty (M, C, T) array, got shape {train.shape}")
    replace = n > len(train)
    index = _rng(seed).choice(len(train), size=n, replace=replace)
    if not replace:
        index = np.sort(index)  # sorted reads are much faster from a memory-mapped array
    return np.asarray(train[index], dtype=np.float32), index


# -- ECGSYN ------------------------------------------------------------------------------------------------------


def ecgsyn_baseline(
    n: int,
    hr_bpm: float | Sequence[float] | np.ndarray,
    fs_hz: float,
    duration_s: float,
    seed: int = 0,
    *,
    hr_std_bpm: float = 1.0,
    noise_mv: float = 0.01,
    center: bool = True,
) -> np.ndarray:
    """``n`` 12-lead ECGSYN records ``(n, 12, T)`` float32 mV in canonical lead order, ``T = round(duration_s *
    fs_hz)``.

    Args:
        hr_bpm: the requested mean heart rate, one for all or one per record ``(n,)``.
        hr_std_bpm: beat-to-beat standard deviation of the heart rate (NeuroKit2's default, 1 bpm).
        noise_mv: amplitude of NeuroKit2's added Laplace noise.
        center: subtract each lead's median. NeuroKit2 rescales every lead independently to [-0.4, 1.2] mV, which
            leaves an arbitrary offset per lead (the isoelectric line is not at 0); recorded PTB-XL leads sit near
            0, and an offset would dominate raw-signal distances.

    Simulated at 500 Hz (the ODE is integrated on the output grid, so a coarse grid would coarsen the RR process)
    and resampled to ``fs_hz``. Record ``i`` uses seed ``seed + i``. NeuroKit2 returns a table with columns named
    I ... V6; they are mapped by name. Note that its leads are simulated independently with per-lead wave
    amplitudes, so the Einthoven/Goldberger laws do not hold for this baseline. Needs ``neurokit2``.
    """
    try:
        import neurokit2 as nk  # optional: only this baseline needs it
    except ImportError as err:
        raise DataError("baseline:ecgsyn needs the neurokit2 package", hint="pip install neurokit2") from err
    rates = np.broadcast_to(np.asarray(hr_bpm, dtype=np.float64), (n,))
    if not np.all((rates > 20) & (rates < 300)):
        raise DataError(f"requested heart rates must be within 20-300 bpm, got {rates.min()}-{rates.max()}")
    sim_fs = 500
    n_out = int(round(duration_s * fs_hz))
    out = np.empty((n, len(LEADS_12), n_out), dtype=np.float32)
    for i in range(n):
        table = nk.ecg_simulate(duration=duration_s, sampling_rate=sim_fs, heart_rate=float(rates[i]),
                                heart_rate_std=hr_std_bpm, noise=noise_mv, method="multileads",
                                random_state=seed + i)
        names = canonical_leads([str(c) for c in table.columns])
        if set(names) != set(LEADS_12):
            raise DataError(f"neurokit2 returned leads {list(names)}, expected the 12 standard leads")
        x = table.to_numpy(dtype=np.float64).T[[names.index(lead) for lead in LEADS_12]]  # (12, T_sim), mV
        if center:
            x = x - np.median(x, axis=-1, keepdims=True)
        y = resample(x, sim_fs, fs_hz)
        out[i] = y[:, :n_out] if y.shape[-1] >= n_out else np.pad(y, ((0, 0), (0, n_out - y.shape[-1])), mode="edge")
    return out


# -- nearest neighbour -------------------------------------------------------------------------------------------


class NearestNeighbourGenerator:
    """Retrieve, for each prompt, the training record with the closest labels and/or report.

    Ranking: first the Hamming distance between multi-hot label vectors (when labels are given), then, among the
    records at the smallest label distance, the cosine similarity of report embeddings (when reports are given and
    an ``embed`` callable was supplied). Ties left after both, common with labels alone (thousands of NORM
    records), are broken uniformly at random, so repeated prompts retrieve different records, as a sampler would.

    Args:
        signals: training records ``(M, C, T)`` mV (a memory-mapped array is fine: only retrieved rows are read).
        labels: multi-hot ``(M, K)`` training labels, or None.
        reports: ``M`` training reports, or None.
        embed: ``list[str] -> (n, E)`` array, any text encoder; the training reports are embedded once here.
    """

    def __init__(
        self,
        signals: np.ndarray,
        *,
        labels: np.ndarray | None = None,
        reports: Sequence[str] | None = None,
        embed: Callable[[list[str]], np.ndarray] | None = None,
    ):
        self.signals = signals
        m = len(signals)
        self.labels = None if labels is None else (np.asarray(labels) > 0.5)
        if self.labels is not None and (self.labels.ndim != 2 or len(self.labels) != m):
            raise DataError(f"labels must be (M, K) with M = {m} records, got {np.shape(labels)}")
        if (reports is None) != (embed is None):
            raise DataError("reports and embed come together: retrieval by text needs both")
        self.embed = embed
        self.report_vectors = None
        if reports is not None:
            if len(reports) != m:
                raise DataError(f"{len(reports)} reports for {m} records")
            self.report_vectors = self._unit(embed(list(reports)))
        if self.labels is None and self.report_vectors is None:
            raise DataError("give training labels, or reports with an embed callable, to retrieve by")

    @staticmethod
    def _unit(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def retrieve(
        self,
        *,
        labels: np.ndarray | None = None,
        reports: Sequence[str] | None = None,
        seed: int | np.random.Generator | None = 0,
    ) -> np.ndarray:
        """Indices ``(B,)`` of the retrieved training records for ``B`` prompts: ``labels (B, K)`` multi-hot
        and/or ``reports`` (``B`` strings)."""
        if labels is None and reports is None:
            raise DataError("give prompt labels and/or reports")
        rng = _rng(seed)
        b = len(labels) if labels is not None else len(reports)
        query_vec = None
        if reports is not None:
            if self.report_vectors is None:
                raise DataError("this generator was built without reports and embed: it cannot retrieve by text")
            if len(reports) != b:
                raise DataError(f"{len(reports)} reports for {b} label rows")
            query_vec = self._unit(self.embed(list(reports)))  # (B, E)
        query_lab = None
        if labels is not None:
            if self.labels is None:
                raise DataError("this generator was built without training labels: it cannot retrieve by label")
            query_lab = np.asarray(labels) > 0.5
            if query_lab.shape != (b, self.labels.shape[1]):
                raise DataError(f"prompt labels {query_lab.shape}, expected ({b}, {self.labels.shape[1]})")
        out = np.empty(b, dtype=np.int64)
        for i in range(b):
            candidates = np.arange(len(self.signals))
            if query_lab is not None:
                hamming = (self.labels != query_lab[i]).sum(axis=1)  # (M,)
                candidates = np.flatnonzero(hamming == hamming.min())
            if query_vec is not None:
                sim = self.report_vectors[candidates] @ query_vec[i]
                candidates = candidates[sim >= sim.max() - 1e-9]
            out[i] = rng.choice(candidates)
        return out

    def sample(
        self,
        *,
        labels: np.ndarray | None = None,
        reports: Sequence[str] | None = None,
        seed: int | np.random.Generator | None = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The retrieved records ``(B, C, T)`` float32 mV and their training indices ``(B,)``."""
        index = self.retrieve(labels=labels, reports=reports, seed=seed)
        return np.asarray(self.signals[index], dtype=np.float32), index


# -- linear lead reconstruction ----------------------------------------------------------------------------------


class LinearLeadReconstructor:
    """Least-squares reconstruction of missing leads from given leads, one linear map for every time point:
    ``missing(t) = [given(t), 1] @ W`` with ``W`` of shape ``(n_given + 1, n_missing)`` (the last row is the
    intercept, mV).

    Fitted on training records only. Input and output use the project's reconstruction format: ``(N, C, T)`` mV
    with channels named by ``leads`` (default the canonical 12); only the given leads are read.
    """

    def __init__(self, given: Sequence[str], missing: Sequence[str] | None = None, *, leads: Sequence[str] = LEADS_12,
                 weights: np.ndarray | None = None):
        self.leads = canonical_leads(leads)
        self.given = canonical_leads(given)
        self.missing = canonical_leads(missing) if missing is not None else tuple(
            n for n in self.leads if n not in self.given)
        if not self.given or not self.missing:
            raise DataError(f"need at least one given and one missing lead, got {self.given} -> {self.missing}")
        unknown = [n for n in self.given + self.missing if n not in self.leads]
        if unknown or set(self.given) & set(self.missing):
            raise DataError(f"given {self.given} and missing {self.missing} must be disjoint subsets of {self.leads}")
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        if self.weights is not None and self.weights.shape != (len(self.given) + 1, len(self.missing)):
            raise DataError(f"weights {self.weights.shape}, expected {(len(self.given) + 1, len(self.missing))}")

    def _columns(self, x: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[1] != len(self.leads):
            raise DataError(f"signals must be (N, {len(self.leads)}, T) with channels {list(self.leads)}, got {x.shape}")
        return x[:, [self.leads.index(n) for n in names]]

    def fit(self, x: np.ndarray, *, batch_size: int = 256) -> LinearLeadReconstructor:
        """Solve the least-squares problem over every sample of the training records ``x (N, C, T)`` mV.

        The normal equations are accumulated in float64 over batches of records (memory stays flat for any N) and
        solved with ``lstsq``, which returns the minimum-norm solution when the given leads are linearly
        dependent (I, II and III together, say) instead of failing.
        """
        g = len(self.given) + 1
        gram, rhs = np.zeros((g, g)), np.zeros((g, len(self.missing)))
        for start in range(0, len(x), batch_size):
            block = x[start : start + batch_size]
            a = self._columns(block, self.given).astype(np.float64).transpose(0, 2, 1).reshape(-1, g - 1)  # (n T, G)
            a = np.hstack([a, np.ones((len(a), 1))])  # (n T, G + 1)
            b = self._columns(block, self.missing).astype(np.float64).transpose(0, 2, 1).reshape(-1, len(self.missing))
            gram += a.T @ a
            rhs += a.T @ b
        if gram[-1, -1] == 0:
            raise DataError("no training samples to fit on")
        self.weights = np.linalg.lstsq(gram, rhs, rcond=None)[0]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``(N, C, T)`` mV with the given leads copied from ``x`` and the missing ones reconstructed; leads in
        neither set are left as they are in ``x``."""
        if self.weights is None:
            raise DataError("the reconstructor is not fitted", hint="call fit(train) or load(path) first")
        x = np.asarray(x, dtype=np.float32)
        given = self._columns(x, self.given).astype(np.float64)  # (N, G, T)
        pred = np.einsum("ngt,gm->nmt", given, self.weights[:-1]) + self.weights[-1][None, :, None]  # (N, M, T)
        out = x.copy()
        out[:, [self.leads.index(n) for n in self.missing]] = pred
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted map as plain arrays (``.npz``: weights and lead names; no pickle)."""
        if self.weights is None:
            raise DataError("nothing to save: the reconstructor is not fitted")
        path = Path(path)
        np.savez(path, weights=self.weights, given=np.array(self.given), missing=np.array(self.missing),
                 leads=np.array(self.leads))
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    @classmethod
    def load(cls, path: str | os.PathLike) -> LinearLeadReconstructor:
        with np.load(path, allow_pickle=False) as f:
            return cls([str(s) for s in f["given"]], [str(s) for s in f["missing"]],
                       leads=[str(s) for s in f["leads"]], weights=f["weights"])


# -- deepfake-ecg ---------------------------------------------------------------------------------------------------

#: The published generator's contract (Thambawita et al. 2021, Pulse2Pulse WaveGAN): 8 leads (I, II, V1-V6), 10 s at
#: 500 Hz, unconditional; the package writes ``G(noise) * 6000`` as integer µV.
DEEPFAKE_FS_HZ = 500.0
DEEPFAKE_SAMPLES = 5000
DEEPFAKE_SCALE_UV = 6000.0


def deepfake_ecg_baseline(n: int, fs_hz: float, *, seed: int = 0, batch_size: int = 16,
                          progress: bool = False) -> np.ndarray:
    """``n`` records ``(n, 12, 10 s × fs_hz)`` in mV from ``deepfake-ecg`` (PyPI; ``pip install 'synth[peers]'``).

    Its weights come from the installed package and are read with ``torch.load(weights_only=True)`` (tensors
    only, never code). Noise is drawn as the package draws it (uniform in [-1, 1], shape (8, 5000)) from a seeded
    generator; the output is taken as the package writes it (× 6000, integer µV), converted to mV, the four
    dependent limb leads derived by the lead laws (:func:`synth.data.leads.twelve_from_eight`), and resampled from
    500 Hz to ``fs_hz``.
    """
    import torch
    from tqdm.auto import tqdm

    from synth.data.leads import twelve_from_eight

    try:
        import deepfakeecg
        from deepfakeecg import Generator
    except ImportError as err:
        raise DataError("baseline:deepfake-ecg needs the deepfake-ecg package",
                        hint="pip install 'synth[peers]' (or pip install deepfake-ecg)") from err
    weights = Path(deepfakeecg.__file__).parent / "checkpoints" / "g_stat.pt"
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)["stat_dict"]
    except Exception as err:  # noqa: BLE001 - anything but plain tensors is refused
        raise DataError(f"cannot read the deepfake-ecg weights as plain tensors ({err})", path=weights) from None
    net = Generator()
    net.load_state_dict(state)
    net.eval()
    gen = torch.Generator().manual_seed(seed)
    out = np.empty((n, 12, int(round(10 * fs_hz))), dtype=np.float32)
    with torch.no_grad():
        for start in tqdm(range(0, n, batch_size), desc="baseline:deepfake-ecg", unit="batch", disable=not progress):
            m = min(batch_size, n - start)
            noise = torch.rand(m, 8, DEEPFAKE_SAMPLES, generator=gen) * 2 - 1  # uniform(-1, 1), as the package
            microvolts = torch.trunc(net(noise) * DEEPFAKE_SCALE_UV)  # the package's int() cast
            x8 = microvolts.numpy().astype(np.float64) / 1000.0  # (m, 8, 5000) mV, leads I, II, V1-V6
            x12 = twelve_from_eight(x8)
            out[start:start + m] = resample(x12, DEEPFAKE_FS_HZ, fs_hz)[..., : out.shape[-1]]
    return out


# -- any folder of records -------------------------------------------------------------------------------------------


def records_baseline(folder: str | os.PathLike, n: int, fs_hz: float, duration_s: float, *, classes: Sequence[str],
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, str]:
    """Records someone else generated, for ``--generator records:DIR``: ``(x (n, 12, T) mV, labels (n, K) or None,
    requested heart rates (n,) or None, how)``.

    ``DIR`` is a synth cohort, or a folder of records in any format synth reads (WFDB, NPZ, NPY at 100 Hz with 12
    leads in canonical order, CSV), optionally with ``conditions.csv`` or ``metadata.csv`` (columns ``record``,
    ``labels`` comma-separated, ``hr``) saying what each was generated for. ``n`` records are drawn with ``seed``
    (all of them when ``n`` is larger), each resampled to ``fs_hz`` and cut or edge-padded to ``duration_s``; leads
    are matched by name, and 8-lead records (I, II, V1-V6) get their limb leads derived.
    """
    import csv

    from synth.data.cohort import Cohort, is_cohort
    from synth.data.leads import LEADS_8, twelve_from_eight
    from synth.data.readers import read_record
    from synth.tasks.common import fit_length

    folder = Path(folder)
    total = int(round(duration_s * fs_hz))
    rng = _rng(seed)
    if is_cohort(folder):
        cohort = Cohort(folder, classes=classes)
        pick = np.sort(rng.choice(len(cohort), min(n, len(cohort)), replace=False))
        x = np.stack([fit_length(resample(cohort.signal(int(i)), cohort.meta.get("fs_hz", 100.0), fs_hz), total)
                      for i in pick])
        hr = np.array([float(cohort.cond(int(i))["heart_rate"]) for i in pick])
        return x, cohort.labels()[pick], hr, f"synth cohort {folder} ({len(pick)} of {len(cohort)} records)"
    if not folder.is_dir():
        raise DataError("records:DIR needs a folder of records", path=folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".hea", ".npz", ".npy", ".csv")
                   and p.name not in ("conditions.csv", "metadata.csv") and not p.name.startswith("."))
    if not files:
        raise DataError("no records (.hea, .npz, .npy, .csv) in the folder", path=folder)
    pick = np.sort(rng.choice(len(files), min(n, len(files)), replace=False))
    wanted: dict[str, dict] = {}
    for table in ("conditions.csv", "metadata.csv"):
        if (folder / table).is_file():
            with open(folder / table, newline="", encoding="utf-8") as fh:
                wanted = {str(r.get("record", "")).strip(): r for r in csv.DictReader(fh)}
            break
    x, labels, hr = [], [], []
    for i in pick:
        path = files[i]
        kwargs = {"fs_hz": 100.0, "leads": list(LEADS_12)} if path.suffix.lower() == ".npy" else {}
        rec = read_record(path, **kwargs)
        if all(lead in rec.leads for lead in LEADS_12):
            sig = rec.select(list(LEADS_12)).signal
        elif all(lead in rec.leads for lead in LEADS_8):
            sig = twelve_from_eight(rec.select(list(LEADS_8)).signal)
        else:
            raise DataError(f"record has leads {', '.join(rec.leads)}: neither 12 leads nor the 8 independent ones",
                            path=path)
        x.append(fit_length(resample(sig, rec.fs_hz, fs_hz), total))
        row = wanted.get(path.stem, {})
        names = [s.strip() for s in str(row.get("labels", "") or "").split(",") if s.strip()]
        labels.append([1.0 if c in names else 0.0 for c in classes])
        hr.append(float(row["hr"]) if str(row.get("hr", "")).strip() else np.nan)
    has_labels = bool(wanted) and any("labels" in r for r in wanted.values())
    return (np.stack(x).astype(np.float32), np.array(labels, np.float32) if has_labels else None,
            np.array(hr) if np.isfinite(hr).any() else None, f"{len(pick)} records from {folder}")
