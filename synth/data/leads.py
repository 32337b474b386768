"""Lead names: the canonical order, aliases found in files, and named subsets.

Leads are always matched by name, never by position: PTB-XL writes ``AVR/AVL/AVF``, MIMIC-IV-ECG stores aVF before
aVL, and one released loader silently swapped them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from synth.errors import DataError

#: The canonical 12-lead order used by every signal in the project.
LEADS_12: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
#: The 8 independent leads; the other four follow from Einthoven's and Goldberger's laws.
LEADS_8: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
#: The default wearable subset.
LEADS_3: tuple[str, ...] = ("II", "V1", "V5")
#: Non-ECG channels the readers know about.
OTHER_CHANNELS: tuple[str, ...] = ("PPG", "RESP")

_ALIASES: dict[str, str] = {name.upper(): name for name in LEADS_12 + OTHER_CHANNELS}
_ALIASES.update(
    {
        "LEAD I": "I", "LEAD II": "II", "LEAD III": "III", "D1": "I", "D2": "II", "D3": "III",
        "MLII": "II", "ML2": "II", "-AVR": "aVR", "PLETH": "PPG", "PLETH.": "PPG", "RESPIRATION": "RESP",
    }
)  # fmt: skip


def canonical_lead(name: str, *, source: str | None = None) -> str:
    """Map a lead or channel name as written in a file (``AVR``, ``avl``, ``MLII``, ``PLETH``) to its canonical name.

    Raises :class:`DataError` naming the file for a name that is not a known lead.
    """
    key = name.strip().strip(",").strip().upper()
    if key in _ALIASES:
        return _ALIASES[key]
    raise DataError(
        f"unknown lead name {name!r}",
        path=source,
        hint=f"known leads: {', '.join(LEADS_12 + OTHER_CHANNELS)}; rename the channel or pass a lead map",
    )


def canonical_leads(names: Iterable[str], *, source: str | None = None) -> tuple[str, ...]:
    """Canonicalise a list of lead names and refuse duplicates (``II`` and ``MLII`` in one record, say)."""
    out = tuple(canonical_lead(n, source=source) for n in names)
    seen: set[str] = set()
    dupes = [n for n in out if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if dupes:
        raise DataError(f"duplicate leads {sorted(set(dupes))} in {list(names)}", path=source,
                        hint="each lead may appear once")
    return out


def parse_lead_set(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Resolve a lead-set spec to canonical names.

    Accepted: ``"12lead"`` (all twelve), ``"8lead"`` (the independent eight), ``"3lead"`` (II, V1, V5),
    ``"1lead:<name>"`` (one lead, e.g. ``1lead:I``), a comma-separated list (``"II,V1,V5"``) or a sequence of names.
    """
    if not isinstance(spec, str):
        return canonical_leads(spec)
    text = spec.strip()
    named = {"12lead": LEADS_12, "8lead": LEADS_8, "3lead": LEADS_3}
    if text.lower() in named:
        return named[text.lower()]
    if text.lower().startswith("1lead:"):
        return (canonical_lead(text.split(":", 1)[1]),)
    if text.lower() == "1lead":
        return ("II",)
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    if not parts:
        raise DataError(f"empty lead set {spec!r}", hint="write e.g. II,V1,V5 or 3lead or 1lead:II")
    return canonical_leads(parts)


def sort_leads(names: Iterable[str]) -> tuple[str, ...]:
    """Order names canonically: the 12 ECG leads first in their order, then other channels in theirs."""
    order = {n: i for i, n in enumerate(LEADS_12 + OTHER_CHANNELS)}
    return tuple(sorted(names, key=lambda n: order.get(n, len(order))))


def leads_for_channels(channels: int) -> tuple[str, ...]:
    """Lead names of a generated signal with ``channels`` rows: 12 (canonical order), 8 (I, II, V1-V6) or 1 (II)."""
    by_count = {12: LEADS_12, 8: LEADS_8, 1: ("II",)}
    if channels not in by_count:
        raise DataError(f"cannot name the {channels} channels of this signal",
                        hint="models generate 12 leads (canonical order), 8 (I, II, V1-V6) or 1 (II)")
    return by_count[channels]


#: The six limb leads as linear functions of (I, II): Einthoven (III = II - I) and Goldberger (aVR = -(I + II) / 2,
#: aVL = I - II / 2, aVF = II - I / 2). Rows follow LEADS_12[:6].
LIMB_FROM_I_II = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0], [-0.5, -0.5], [1.0, -0.5], [-0.5, 1.0]])


def twelve_from_eight(x: np.ndarray) -> np.ndarray:
    """``(..., 8, T)`` in :data:`LEADS_8` order → ``(..., 12, T)`` in canonical order, the four dependent limb leads
    (III, aVR, aVL, aVF) computed from I and II by the lead laws, so they obey them exactly."""
    x = np.asarray(x)
    if x.shape[-2] != len(LEADS_8):
        raise ValueError(f"expected the 8 independent leads, got {x.shape[-2]} channels")
    limb = np.einsum("lk,...kt->...lt", LIMB_FROM_I_II.astype(x.dtype), x[..., :2, :])  # (..., 6, T)
    return np.concatenate([limb, x[..., 2:, :]], axis=-2)


def project_limb_leads(signal: np.ndarray, given: Sequence[bool], *, given_weight: float = 1e6) -> np.ndarray:
    """Make the six limb leads of a 12-lead ``(..., 12, T)`` signal obey the lead laws, trusting the given ones.

    At every sample the limb leads span only two dimensions (I and II). The (I, II) pair is fitted by weighted least
    squares to all six limb leads, the given leads (``given``, 12 flags in canonical order) with weight
    ``given_weight`` and the others with weight 1, and the six leads are recomputed from it. Given leads that already
    obey the laws come back unchanged (up to float rounding); the precordial leads are untouched.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.shape[-2] != len(LEADS_12):
        raise ValueError(f"expected 12 leads in canonical order, got {x.shape[-2]}")
    flags = np.asarray(given, dtype=bool)
    w = np.where(flags[:6], given_weight, 1.0)  # (6,)
    a = LIMB_FROM_I_II  # (6, 2)
    solve = np.linalg.solve(a.T @ (w[:, None] * a), a.T * w)  # (2, 6): limb leads -> (I, II)
    out = x.copy()
    out[..., :6, :] = np.einsum("lk,...kt->...lt", a @ solve, x[..., :6, :])
    return out.astype(np.asarray(signal).dtype)
