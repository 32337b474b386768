"""Bidirectional transformer over discrete tokens, cross-attending to condition tokens: MaskGIT's network.

Chang et al. 2022, "MaskGIT: Masked Generative Image Transformer", §3.1: token embeddings plus positions go
through pre-norm blocks with full (not causal) self-attention; the head gives logits over the codebook for
every position. Each block also cross-attends to the condition tokens (B, L, D) of the conditioning stack, as
MUSE does for text (Chang et al. 2023, §2.1). Positions are sinusoidal over the flattened sequence, so any
number of tokens works: a video tokenizer's (F', H', W') codes flattened to N = F'·H'·W' tokens run unchanged.

Per-frame condition channels (B, Cc, F) — e.g. the cardiac phase of each video frame — are accepted when the
config names the token grid's time axis (``time_tokens`` = F', ``channel_frames`` = F / F'): each group of
``channel_frames`` frames is projected (a strided convolution, so timing inside the group is kept) and added to
every token of that time step, with the tokens flattened time-major ("b (f h w)").
"""

from __future__ import annotations

from dataclasses import dataclass

from einops import rearrange
from torch import Tensor, nn

from synth.generative.networks.layers import Attention, sincos_positions
from synth.registry import register


class Block(nn.Module):
    """Pre-norm self-attention, cross-attention to (tokens, mask), MLP; x (B, N, D)."""

    def __init__(self, dim: int, cond_dim: int, num_heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads)
        self.cross_attn = Attention(dim, num_heads, context_dim=cond_dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )

    def forward(self, x: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
        x = x + self.self_attn(self.norm1(x))  # (B, N, D)
        x = x + self.cross_attn(self.norm2(x), tokens, mask)
        return x + self.mlp(self.norm3(x))


@register("network", "token_transformer")
class TokenTransformer(nn.Module):
    """x_t (B, N) long ids in [0, in_channels) (the last id is [MASK]), t (B,), tokens (B, L, D_cond), mask (B, L)
    → logits (B, N, out_channels).

    Built as every network, with ``in_channels`` = vocabulary size including the mask id and ``out_channels`` =
    codebook size. ``t`` (the masked fraction) is accepted for the common network signature and not used: the
    [MASK] ids themselves tell the network what is hidden (Chang et al. 2022, §3.1). With ``cond_channels`` the
    network also takes per-frame channels (B, Cc, time_tokens · channel_frames), added per token time step.
    """

    @dataclass
    class Config:
        hidden_dim: int = 256
        depth: int = 8
        num_heads: int = 8
        mlp_ratio: float = 4.0
        dropout: float = 0.1
        #: Time steps F' of the token grid (tokens flattened time-major); needed for per-frame condition channels.
        time_tokens: int = 0
        #: Condition-channel frames per token time step (F / F').
        channel_frames: int = 1

        def __post_init__(self) -> None:
            if self.depth < 1 or self.hidden_dim % self.num_heads:
                raise ValueError("depth must be positive and hidden_dim divisible by num_heads")
            if self.time_tokens < 0 or self.channel_frames < 1:
                raise ValueError("time_tokens must be >= 0 and channel_frames >= 1")

    def __init__(
        self, cfg: Config, *, in_channels: int, out_channels: int, cond_dim: int, cond_channels: int = 0
    ):
        super().__init__()
        if cond_channels and not cfg.time_tokens:
            raise ValueError("token_transformer takes per-frame condition channels only with time_tokens set "
                             "(the time steps of its token grid)")
        self.time_tokens, self.channel_frames = cfg.time_tokens, cfg.channel_frames
        self.frame_channels = (
            nn.Conv1d(cond_channels, cfg.hidden_dim, cfg.channel_frames, stride=cfg.channel_frames)
            if cond_channels else None
        )
        self.embed = nn.Embedding(in_channels, cfg.hidden_dim)
        self.blocks = nn.ModuleList(
            Block(cfg.hidden_dim, cond_dim, cfg.num_heads, cfg.mlp_ratio, cfg.dropout)
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.hidden_dim)
        self.head = nn.Linear(cfg.hidden_dim, out_channels)

    @classmethod
    def from_config(cls, cfg: Config, **kwargs) -> TokenTransformer:
        return cls(cfg, **kwargs)

    def forward(
        self, x_t: Tensor, t: Tensor, tokens: Tensor, mask: Tensor, cond_channels: Tensor | None = None
    ) -> Tensor:
        """x_t (B, N) long, t (B,) unused, tokens (B, L, D), mask (B, L) bool, cond_channels (B, Cc, F) or None
        → logits (B, N, K) float."""
        h = self.embed(x_t)  # (B, N, D)
        h = h + sincos_positions(h.shape[1], h.shape[2], h.device)
        if self.frame_channels is not None:
            h = self.add_frame_channels(h, cond_channels)
        for block in self.blocks:
            h = block(h, tokens, mask)  # (B, N, D)
        return self.head(self.norm(h))  # (B, N, K)

    def add_frame_channels(self, h: Tensor, channels: Tensor | None) -> Tensor:
        """h (B, N, D) + the projection of channels (B, Cc, F' · channel_frames) at each token's time step."""
        frames = self.time_tokens * self.channel_frames
        if channels is None or channels.shape[-1] != frames or h.shape[1] % self.time_tokens:
            got = None if channels is None else tuple(channels.shape)
            raise ValueError(f"token_transformer needs condition channels (B, Cc, {frames}) and a token count "
                             f"divisible by {self.time_tokens}; got channels {got} and {h.shape[1]} tokens")
        per_step = self.frame_channels(channels.to(h.dtype))  # (B, D, F')
        h = rearrange(h, "b (f s) d -> b f s d", f=self.time_tokens) + rearrange(per_step, "b d f -> b f 1 d")
        return rearrange(h, "b f s d -> b (f s) d")
