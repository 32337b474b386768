"""Conditioning: adapters that turn raw inputs into tokens, and the stack that joins them.

Raw inputs arrive as one ``cond`` dict (keys below); each adapter reads its keys and emits tokens (B, L, D)
plus a mask (B, L); :class:`~synth.conditioning.stack.ConditioningStack` concatenates them, adds modality
embeddings and does classifier-free-guidance dropout. Backbones only ever see the stack's output.

``cond`` keys read by the built-in adapters:

- ``report``: list[str] of length B, free-text reports (``""`` or ``None`` = missing)
- ``labels``: (B, K) float multi-hot diagnostic labels
- ``age`` (B,) years, ``sex`` (B,) 0 = male / 1 = female, ``heart_rate`` (B,) bpm; NaN = missing
- ``leads``: (B, 12, T) mV in canonical order (LEADS_12); ``lead_mask``: (B, 12) bool, True = lead given
- ``ppg``: (B, 1, T_ppg) any units (standardised per sample)
- ``ecg``: (B, 12, T_ecg) mV, ``ecg_lead_mask``: (B, 12) bool, for ECG → echo
"""

from synth.conditioning.base import Adapter, AdapterOutput, AdapterParams
from synth.conditioning.stack import Conditioning, ConditioningStack, expand_cond

__all__ = ["Adapter", "AdapterOutput", "AdapterParams", "Conditioning", "ConditioningStack", "expand_cond"]
