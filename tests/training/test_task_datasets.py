"""The task training datasets (synth.training.tasks) and the English report composer, on the shipped sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synth.data.leads import LEADS_12
from synth.data.ptbxl import PTBXL, english_report
from synth.data.sample import sample_bidmc_root, sample_ptbxl_root
from synth.data.torch_data import PTBXLWindows
from synth.training.tasks import (
    HEADLINE_SETS,
    LeadSubsetWindows,
    PPGWindows,
    ReportWindows,
    lead_mask_for,
    normalise_amplitude,
)

STATEMENTS = pd.DataFrame(
    {"description": ["normal ECG", "left ventricular hypertrophy", "sinus rhythm", "anteroseptal myocardial "
                     "infarction", "abnormal QRS"],
     "diagnostic": [1.0, 1.0, np.nan, 1.0, np.nan], "form": [np.nan, np.nan, np.nan, np.nan, 1.0],
     "rhythm": [np.nan, np.nan, 1.0, np.nan, np.nan]},
    index=["NORM", "LVH", "SR", "ASMI", "ABQRS"],
)


def test_english_report_orders_rhythm_first_and_qualifies_by_likelihood():
    text = english_report({"ASMI": 15.0, "LVH": 100.0, "SR": 0.0, "ABQRS": 0.0}, STATEMENTS)
    assert text == "sinus rhythm, left ventricular hypertrophy, possible anteroseptal myocardial infarction, abnormal QRS"
    assert english_report({"LVH": 50.0}, STATEMENTS) == "probable left ventricular hypertrophy"
    assert english_report({}, STATEMENTS) == ""
    assert english_report({"XYZ": 100.0}, STATEMENTS) == "XYZ"  # unknown code: kept as written


def test_report_windows_alternate_original_and_english():
    data = PTBXL(sample_ptbxl_root()).split("train")
    base = PTBXLWindows(data, cond_fields=("report", "labels"), progress=False)
    english = data.english_reports()
    ds = ReportWindows(base, english)
    assert len(ds) == 2 * len(base)
    x0, c0 = ds[0]
    x1, c1 = ds[1]
    np.testing.assert_array_equal(x0, x1)
    assert c0["report"] == data.table["report"].iloc[0]
    assert c1["report"] == english[data.ecg_ids[0]] and c1["report"] != c0["report"]
    with pytest.raises(Exception, match="English report"):
        ReportWindows(base, {})


def test_lead_masks_are_deterministic_and_cover_the_headline_sets():
    masks = np.stack([lead_mask_for(i) for i in range(2000)])
    np.testing.assert_array_equal(masks, np.stack([lead_mask_for(i) for i in range(2000)]))
    assert masks.any(axis=1).all() and not masks.all(axis=1).any()  # 1..11 leads given, never none or all
    three = np.array([name in ("II", "V1", "V5") for name in LEADS_12])
    share = (masks == three).all(axis=1).mean()
    assert abs(share - HEADLINE_SETS[0][1]) < 0.05
    assert not (masks == lead_mask_for(0, seed=1)).all(axis=1).all()


def test_lead_subset_windows_add_the_mask():
    data = PTBXL(sample_ptbxl_root()).split("val")
    ds = LeadSubsetWindows(PTBXLWindows(data, cond_fields=("leads",), window_length=250, progress=False),
                           fixed="II,V1,V5")
    x, cond = ds[3]
    assert x.shape == (12, 250) and cond["leads"].shape == (12, 250)
    assert [LEADS_12[i] for i in np.flatnonzero(cond["lead_mask"])] == ["II", "V1", "V5"]


def test_ppg_windows_pair_ppg_with_normalised_lead_ii():
    from synth.data.bidmc import BIDMC

    bidmc = BIDMC(sample_bidmc_root())
    rec = bidmc.record(bidmc.subjects[0])
    ds = PPGWindows([rec], window_length=500, window_stride=250)
    assert len(ds) == 1 + (rec.signal.shape[1] - 500) // 250
    x, cond = ds[2]
    assert x.shape == (1, 500) and cond["ppg"].shape == (1, 500)
    np.testing.assert_allclose(x, normalise_amplitude(rec.signal[0, 500:1000][None]), atol=1e-6)
    lo, hi = np.percentile(x, [0.5, 99.5])
    assert hi - lo == pytest.approx(1.0, abs=1e-3)
