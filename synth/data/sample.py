"""The small real sample shipped inside the package (see ``synth/assets/sample/ATTRIBUTION.md``)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "assets" / "sample"


def sample_ptbxl_root() -> Path:
    """Folder of the shipped PTB-XL sample (160 records at 100 Hz, 20 at 500 Hz, all folds)."""
    return SAMPLE_DIR / "ptbxl"


def sample_bidmc_root() -> Path:
    """Folder of the shipped BIDMC sample (first 120 s of subjects 1, 38 and 46)."""
    return SAMPLE_DIR / "bidmc"
