"""Vector quantisation with an EMA codebook, a straight-through gradient and dead-code restarts.

Shape-agnostic: the quantiser reads vectors along dim 1 of any (B, D, *spatial) tensor, so 1D signal latents
(B, D, T') and video latents (B, D, F', H', W') share it, and codes come back as (B, *spatial).

- Assignment: the nearest codebook entry e_k = argmin_k ‖z − e_k‖² (van den Oord et al. 2017, "Neural Discrete
  Representation Learning", Eq. 1).
- Gradient: straight-through, z_q = z + sg(e_k − z), so the decoder's gradient reaches the encoder unchanged
  (§3.1); the commitment term β ‖z − sg(e_k)‖² (Eq. 3, β = 0.25) keeps the encoder near its codes.
- Codebook: not learned by gradient but as an exponential moving average of the vectors assigned to each code,
  with Laplace smoothing of the counts (van den Oord et al. 2017, App. A.1; Razavi et al. 2019, "Generating
  Diverse High-Fidelity Images with VQ-VAE-2", §3.1): N_k ← γ N_k + (1 − γ) n_k, m_k ← γ m_k + (1 − γ) Σ z,
  e_k = m_k / N_k. Under data parallelism n_k and Σ z are summed over processes first, so every replica
  makes the same update.
- Dead codes: a code whose EMA count N_k falls below ``dead_code_threshold`` (assignments per batch) is moved
  onto a random encoder output of the current batch (Dhariwal et al. 2020, "Jukebox", §2.2; Zeghidour et al.
  2021, "SoundStream", §3.3). Counts start at 0, so the first training batch initialises the whole codebook
  from data. Draws use torch's global RNG: the same seed gives the same codebook.
- Usage: the batch perplexity exp(H(p)) of the code histogram p (1 = one code used, K = all used equally)
  and the fraction of codes used are returned with every call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import pack, rearrange, unpack
from torch import Tensor, nn


@dataclass
class Quantized:
    """z_q (B, D, *spatial) straight-through vectors; codes (B, *spatial) long; commitment: scalar loss (not yet
    weighted); metrics: perplexity, codebook_usage, dead_codes_restarted (floats)."""

    z_q: Tensor
    codes: Tensor
    commitment: Tensor
    metrics: dict[str, float]


def code_usage(codes: Tensor, codebook_size: int) -> tuple[float, float]:
    """(perplexity, fraction of codes used) of the code histogram of ``codes`` (any shape, long)."""
    counts = torch.bincount(codes.reshape(-1), minlength=codebook_size).float()  # (K,)
    p = counts / counts.sum().clamp(min=1.0)
    entropy = -(p * torch.log(p.clamp(min=1e-12))).sum()
    return float(torch.exp(entropy)), float((counts > 0).float().mean())


def _all_reduce(*tensors: Tensor) -> None:
    if dist.is_available() and dist.is_initialized():
        for t in tensors:
            dist.all_reduce(t)


class VectorQuantizer(nn.Module):
    """z (B, D, *spatial) → :class:`Quantized`; updates the codebook (EMA, restarts) in training mode only.

    Buffers (all in the state dict, so a resumed run and an export carry them): ``codebook`` (K, D),
    ``cluster_size`` (K,) EMA counts N_k, ``embed_sum`` (K, D) EMA sums m_k.
    """

    def __init__(
        self,
        codebook_size: int,
        dim: int,
        *,
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_code_threshold: float = 1.0,
    ):
        super().__init__()
        if codebook_size < 2 or dim < 1 or not 0.0 < decay < 1.0:
            raise ValueError("codebook_size must be >= 2, dim >= 1 and decay in (0, 1)")
        self.codebook_size, self.dim = codebook_size, dim
        self.decay, self.eps, self.dead_code_threshold = decay, eps, dead_code_threshold
        codebook = torch.randn(codebook_size, dim)
        self.register_buffer("codebook", codebook)  # (K, D)
        self.register_buffer("cluster_size", torch.zeros(codebook_size))  # (K,) 0: every code starts dead
        self.register_buffer("embed_sum", codebook.clone())  # (K, D)

    @staticmethod
    def _flatten(z: Tensor) -> tuple[Tensor, list]:
        flat, packed_shape = pack([rearrange(z, "b d ... -> b ... d")], "b * d")  # (B, N, D)
        return flat, packed_shape

    def nearest(self, flat: Tensor) -> Tensor:
        """Vectors (..., D) → index of the nearest code (...,) long (squared Euclidean distance)."""
        distance = (
            flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(-1)
        )  # (..., K)
        return distance.argmin(dim=-1)

    def lookup(self, codes: Tensor) -> Tensor:
        """codes (B, *spatial) long → code vectors (B, D, *spatial)."""
        return rearrange(F.embedding(codes, self.codebook), "b ... d -> b d ...")

    def forward(self, z: Tensor) -> Quantized:
        """z (B, D, *spatial) float → straight-through z_q (B, D, *spatial), codes (B, *spatial), commitment."""
        flat, packed_shape = self._flatten(z.float())  # (B, N, D)
        codes = self.nearest(flat.detach())  # (B, N)
        e = F.embedding(codes, self.codebook)  # (B, N, D)
        commitment = F.mse_loss(flat, e.detach())
        z_q = flat + (e - flat).detach()  # straight-through: forward e, backward identity
        restarted = 0
        if self.training and torch.is_grad_enabled():
            restarted = self._update(rearrange(flat.detach(), "b n d -> (b n) d"), codes.reshape(-1))
        perplexity, usage = code_usage(codes, self.codebook_size)
        [z_q] = unpack(z_q, packed_shape, "b * d")  # (B, *spatial, D)
        [codes] = unpack(codes, packed_shape, "b *")  # (B, *spatial)
        return Quantized(
            z_q=rearrange(z_q, "b ... d -> b d ...").to(z.dtype),
            codes=codes,
            commitment=commitment,
            metrics={
                "perplexity": perplexity,
                "codebook_usage": usage,
                "dead_codes_restarted": float(restarted),
            },
        )

    @torch.no_grad()
    def _update(self, flat: Tensor, codes: Tensor) -> int:
        """EMA step on vectors flat (N, D) assigned to codes (N,), then dead-code restarts; returns the number
        of codes restarted."""
        onehot = F.one_hot(codes, self.codebook_size).type(flat.dtype)  # (N, K)
        counts, sums = onehot.sum(0), onehot.t() @ flat  # (K,), (K, D)
        _all_reduce(counts, sums)
        self.cluster_size.lerp_(counts, 1 - self.decay)
        self.embed_sum.lerp_(sums, 1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total  # (K,)
        self.codebook.copy_(self.embed_sum / smoothed[:, None].clamp(min=self.eps))
        dead = self.cluster_size < self.dead_code_threshold  # (K,)
        num_dead = int(dead.sum())
        if num_dead:
            # Every process draws the same indices only if the batches agree; DDP's buffer broadcast at the
            # next forward makes all replicas take rank 0's codebook, so they never drift apart.
            pick = torch.randint(0, flat.shape[0], (num_dead,), device=flat.device)  # (n_dead,)
            self.codebook[dead] = flat[pick]
            self.embed_sum[dead] = flat[pick] * self.dead_code_threshold
            self.cluster_size[dead] = self.dead_code_threshold
        return num_dead
