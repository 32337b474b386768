"""Shared fixtures: where the real datasets live, and a small synthetic 12-lead record.

The real data (PTB-XL subset and BIDMC) sits in ``../shared/data`` beside the checkout, or where
``SYNTH_SHARED_DATA`` points. Tests that need it skip when it is absent, except on CI, which must have it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from synth.data.leads import LEADS_12
from synth.data.record import Record

pytest_plugins = ["pytester"]

SKIP_REASON = "needs ../shared/data (PTB-XL subset and BIDMC, as CI has); absent here"


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """Each test gets the process's torch thread count back: a script's ``main`` run in-process may set its own
    (``--threads``), and float sums reduced over another number of threads differ in the last bit, which the
    exact-resume tests compare."""
    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout, unless ``SYNTH_SHARED_DATA`` names another folder."""
    env = os.environ.get("SYNTH_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def require_shared(path: Path) -> Path:
    """``path`` if it exists; otherwise skip the test, or fail it on CI (``CI=true``), which must have it."""
    if path.exists():
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{path} is missing: CI must provide the shared data ({SKIP_REASON})")
    pytest.skip(SKIP_REASON)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_shared(shared_data_dir())


@pytest.fixture(scope="session")
def ptbxl_root(shared_data: Path) -> Path:
    return require_shared(shared_data / "ptbxl" / "ptbxl_database.csv").parent


@pytest.fixture(scope="session")
def bidmc_root(shared_data: Path) -> Path:
    return require_shared(shared_data / "bidmc" / "bidmc_csv").parent


def synthetic_12lead(
    fs_hz: float = 100.0, duration_s: float = 10.0, *, heart_rate_bpm: float = 72.0
) -> Record:
    """A deterministic 12-lead record of Gaussian-bump beats (P, QRS, T) in mV that obeys Einthoven's and
    Goldberger's laws, so lead relations can be checked on it."""
    t = np.arange(int(round(fs_hz * duration_s))) / fs_hz
    period = 60.0 / heart_rate_bpm
    phase = np.mod(t, period)

    def bumps(waves: list[tuple[float, float, float]]) -> np.ndarray:  # (centre s, width s, amplitude mV)
        return sum(a * np.exp(-0.5 * ((phase - c) / w) ** 2) for c, w, a in waves)

    lead_i = bumps([(0.15, 0.025, 0.08), (0.30, 0.012, 0.7), (0.55, 0.05, 0.2)])
    lead_ii = bumps([(0.15, 0.025, 0.12), (0.29, 0.012, 1.1), (0.56, 0.05, 0.3)])
    limb = {
        "I": lead_i, "II": lead_ii, "III": lead_ii - lead_i, "aVR": -(lead_i + lead_ii) / 2,
        "aVL": lead_i - lead_ii / 2, "aVF": lead_ii - lead_i / 2,
    }  # fmt: skip
    chest = {f"V{k}": bumps([(0.15, 0.025, 0.05 * k), (0.30, 0.012, (k - 3.2) * 0.4), (0.55, 0.05, 0.1 * k)])
             for k in range(1, 7)}
    signal = np.stack([{**limb, **chest}[name] for name in LEADS_12]).astype(np.float32)
    meta = {"dataset": "synthetic", "heart_rate_bpm": heart_rate_bpm}
    return Record(signal, fs_hz, LEADS_12, metadata=meta)


@pytest.fixture
def synthetic_record() -> Record:
    """10 s of 12-lead Gaussian-bump beats at 100 Hz, in mV."""
    return synthetic_12lead()


@pytest.fixture
def make_synthetic_record():
    """The factory behind ``synthetic_record``: ``make_synthetic_record(fs_hz=250, duration_s=4)``."""
    return synthetic_12lead


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> Path:
    """A folder laid out like ``checkpoints/`` holding tiny ``report2ecg``, ``reconstruct``, ``ppg2ecg``,
    ``upsample500`` and ``echo_maskgit`` (untrained, fast: for behaviour, not quality)."""
    from tasks.tiny import save_tiny_checkpoints

    return save_tiny_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture
def use_tiny_checkpoints(tiny_checkpoints, monkeypatch) -> Path:
    """Point the shipped-checkpoint lookup (``$SYNTH_CHECKPOINTS``) at :func:`tiny_checkpoints`."""
    monkeypatch.setenv("SYNTH_CHECKPOINTS", str(tiny_checkpoints))
    return tiny_checkpoints
