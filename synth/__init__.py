"""synth: realistic synthetic cardiac signals.

The data contract used everywhere: a signal is ``(C, T)`` float32 in mV at a declared ``fs_hz``, with named leads
in the canonical order I, II, III, aVR, aVL, aVF, V1-V6 (see :mod:`synth.data.leads`).
"""

__version__ = "0.1.0"
