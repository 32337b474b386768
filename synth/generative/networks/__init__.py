"""Denoiser / velocity networks: plain ``f(x_t, t, tokens, mask, cond_channels) -> output`` modules.

Every network is built with ``(params, *, in_channels, out_channels, cond_dim, cond_channels)`` and its
forward takes x_t (B, C, T), t (B,) in [0, 1], tokens (B, L, D), mask (B, L) bool and optional cond_channels
(B, Cc, T) that are concatenated to x_t. What the output means (ε, v, velocity, logits) is the process's
business, not the network's.
"""
