"""Generative backbones behind one protocol: ``loss(x, cond) -> LossOutput`` and
``sample(cond, num_samples, *, steps, guidance_scale, generator) -> Tensor``.

A backbone (a process: diffusion, rectified flow, ...) takes a network and a conditioning stack; it defines
the training target and calls a sampler. Each lives in one file and registers itself (see
:mod:`synth.registry`).
"""

from synth.generative.base import GenerativeModel, LossOutput, build_model

__all__ = ["GenerativeModel", "LossOutput", "build_model"]
