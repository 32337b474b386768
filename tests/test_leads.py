"""Lead names: aliases found in files, refusals, and lead-set specs."""

from __future__ import annotations

import pytest

from synth.data.leads import (
    LEADS_3,
    LEADS_8,
    LEADS_12,
    canonical_lead,
    canonical_leads,
    parse_lead_set,
    sort_leads,
)
from synth.errors import DataError


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("AVR", "aVR"), ("AVL", "aVL"), ("AVF", "aVF"), ("avl", "aVL"), ("avf", "aVF"), ("aVR", "aVR"),
        ("MLII", "II"), ("ML2", "II"), ("lead ii", "II"), ("D3", "III"), ("v1", "V1"), ("V6", "V6"),
        ("PLETH", "PPG"), ("Pleth", "PPG"), ("PLETH,", "PPG"), (" II, ", "II"), ("Resp", "RESP"),
    ],
)  # fmt: skip
def test_aliases_map_to_canonical_names(written, canonical):
    assert canonical_lead(written) == canonical


def test_every_canonical_name_maps_to_itself():
    assert canonical_leads(LEADS_12) == LEADS_12


def test_unknown_lead_error_names_the_lead_and_the_file():
    with pytest.raises(DataError) as exc:
        canonical_lead("XYZ", source="rec.hea")
    assert "XYZ" in str(exc.value)
    assert "rec.hea" in str(exc.value)
    assert "aVL" in str(exc.value)  # says what is known, so the user can rename


def test_duplicate_leads_are_refused_even_through_aliases():
    with pytest.raises(DataError, match="duplicate"):
        canonical_leads(["I", "II", "I"])
    with pytest.raises(DataError, match=r"duplicate leads \['II'\]"):
        canonical_leads(["II", "MLII", "V1"])


def test_canonical_leads_keeps_the_file_order():
    assert canonical_leads(["V5", "AVF", "I"]) == ("V5", "aVF", "I")


@pytest.mark.parametrize(
    ("spec", "leads"),
    [
        ("3lead", ("II", "V1", "V5")), ("1lead:I", ("I",)), ("1lead:avl", ("aVL",)), ("1lead", ("II",)),
        ("II,V1,V5", ("II", "V1", "V5")), (" V5 , avr ", ("V5", "aVR")), ("12lead", LEADS_12),
        ("12LEAD", LEADS_12), ("8lead", LEADS_8), (["I", "AVF"], ("I", "aVF")),
    ],
)  # fmt: skip
def test_parse_lead_set(spec, leads):
    assert parse_lead_set(spec) == leads


def test_named_sets():
    assert LEADS_3 == ("II", "V1", "V5")
    assert set(LEADS_8) < set(LEADS_12) and len(LEADS_8) == 8


@pytest.mark.parametrize(
    ("spec", "needle"),
    [("", "empty"), (" , ", "empty"), ("II,Q7", "Q7"), ("1lead:XYZ", "XYZ"), ("II,II", "duplicate")],
)
def test_parse_lead_set_refuses_bad_specs(spec, needle):
    with pytest.raises(DataError, match=needle):
        parse_lead_set(spec)


def test_sort_leads_puts_ecg_first_then_other_channels():
    assert sort_leads(["PPG", "V1", "aVF", "I", "RESP", "aVL"]) == ("I", "aVL", "aVF", "V1", "PPG", "RESP")


def test_project_limb_leads_keeps_lawful_signals_and_repairs_a_generated_lead():
    import numpy as np

    from synth.data.leads import LEADS_12, LIMB_FROM_I_II, project_limb_leads

    rng = np.random.default_rng(0)
    x = np.zeros((2, 12, 40))
    x[:, :6] = np.einsum("lk,bkt->blt", LIMB_FROM_I_II, rng.standard_normal((2, 2, 40)))
    x[:, 6:] = rng.standard_normal((2, 6, 40))
    np.testing.assert_allclose(project_limb_leads(x, [False] * 12), x, atol=1e-12)  # already lawful
    noisy = x.copy()
    noisy[:, 0] += 0.5  # lead I generated wrong; II and III given
    given = [name in ("II", "III") for name in LEADS_12]
    fixed = project_limb_leads(noisy, given)
    np.testing.assert_allclose(fixed, x, atol=1e-5)  # I = II - III restored, augmented leads follow
    assert fixed.dtype == noisy.dtype


def test_twelve_from_eight_derives_the_limb_leads_exactly():
    import numpy as np

    from synth.data.leads import LEADS_8, LEADS_12, twelve_from_eight

    x = np.random.default_rng(1).standard_normal((3, 8, 50)).astype(np.float32)
    y = twelve_from_eight(x)
    assert y.shape == (3, 12, 50) and y.dtype == np.float32
    lead = {name: y[:, i] for i, name in enumerate(LEADS_12)}
    np.testing.assert_array_equal(y[:, [LEADS_12.index(n) for n in LEADS_8]], x)  # the 8 pass through
    np.testing.assert_allclose(lead["III"], lead["II"] - lead["I"], atol=1e-6)
    np.testing.assert_allclose(lead["aVR"], -(lead["I"] + lead["II"]) / 2, atol=1e-6)
    np.testing.assert_allclose(lead["aVL"], lead["I"] - lead["II"] / 2, atol=1e-6)
    np.testing.assert_allclose(lead["aVF"], lead["II"] - lead["I"] / 2, atol=1e-6)
    with pytest.raises(ValueError, match="8 independent"):
        twelve_from_eight(y)
