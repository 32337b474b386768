"""Networks: plain modules that a process (a backbone) wraps.

Every network is built with ``(params, *, in_channels, out_channels, cond_dim, cond_channels)``. Denoisers and
velocity networks (``unet1d``, ``dit1d``) and the masked-token transformer (``token_transformer``, x_t = (B, N)
ids) are ``f(x_t, t, tokens, mask, cond_channels) -> output``, with t (B,) in [0, 1], tokens (B, L, D), mask
(B, L) bool and optional cond_channels (B, Cc, T) concatenated to x_t. Autoencoder networks
(``conv1d_autoencoder``) expose ``encode``/``decode`` instead. What the output means (ε, v, velocity, logits,
Gaussian moments, vectors to quantise) is the process's business, not the network's.
"""
