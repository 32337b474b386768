"""Echo-video metrics and the ``synth bench echo`` report.

- **Echo encoder** (:class:`EchoEncoder`): the project's own feature extractor for echo, an EF regressor trained on
  simulator clips of the TRAIN split (selected on VAL, never on TEST). A per-frame 2D CNN gives frame embeddings
  (the feature space of the frame-level Fréchet distance); a temporal convolution over them, pooled by max, min and
  mean, regresses EF. Saved as ``config.json`` + ``model.safetensors``.
- **Frame FD with its floor**: FD(generated frames, real test frames) beside FD(real train frames, real test frames)
  at equal counts, with bootstrap intervals (:func:`evaluation.frechet.fd_with_floor`).
- **Paired fidelity**: SSIM and PSNR (torchmetrics) of each generated clip against the simulator clip its ECG drove,
  in [0, 1] intensity, plus two references in the same run: the tokenizer's reconstruction of the real clip (the
  ceiling the generator can reach) and an unpaired control (generated vs the ground truth of another clip).
- **EF consistency**: |EF predicted by the encoder on the generated clip − requested EF|, beside the encoder's own
  error on the real test clips (the floor of this measurement).
- **Timing**: end-diastole (local maxima) and end-systole (local minima) of the LV cavity area curve measured from
  the video (dark pixels in the LV region of the apical view), matched to the ECG's R-peaks and T-wave ends, in ms;
  the same measurement on the real clips is its floor, and the generated clips against *another* clip's ECG is the
  chance level.
- **Speed**: seconds per video (sampling + decoding + upsampling to 112×112), batch 1.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.ndimage as ndi
import scipy.signal as sps
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from synth.echo.generate import DEFAULT_EF_GUIDANCE, DEFAULT_GUIDANCE
from synth.errors import DataError, MissingFileError

# -- echo encoder --------------------------------------------------------------------------------------------------


@dataclass
class EncoderConfig:
    size: int = 64
    channels: tuple[int, int, int] = (16, 32, 64)
    feature_dim: int = 64


class EchoEncoder(nn.Module):
    """video (B, 1, F, S, S) in [-1, 1] → EF (B,) percent; ``frame_features`` → (B, F, D)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        c1, c2, c3 = cfg.channels
        self.frame = nn.Sequential(
            nn.Conv2d(1, c1, 4, stride=4), nn.GELU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.GroupNorm(8, c2), nn.GELU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.GroupNorm(8, c3), nn.GELU(),
            # Flatten, not global pooling: where a dark region is (LV vs atria) is what EF depends on.
            nn.Flatten(), nn.Linear(c3 * (cfg.size // 16) ** 2, cfg.feature_dim),
        )
        d = cfg.feature_dim
        self.temporal = nn.Sequential(nn.Conv1d(d, d, 5, padding=2), nn.GELU(), nn.Conv1d(d, d, 5, padding=2), nn.GELU())
        self.head = nn.Sequential(nn.Linear(3 * d, d), nn.GELU(), nn.Linear(d, 1))

    def frame_features(self, video: Tensor) -> Tensor:
        """video (B, 1, F, S, S) → (B, F, D)."""
        b = video.shape[0]
        if video.shape[-1] != self.cfg.size:
            video = rearrange(F.interpolate(rearrange(video, "b c f h w -> (b f) c h w"), size=(self.cfg.size,) * 2,
                                            mode="bilinear", antialias=True, align_corners=False),
                              "(b f) c h w -> b c f h w", b=b)
        h = self.frame(rearrange(video, "b c f h w -> (b f) c h w"))  # (B·F, D)
        return rearrange(h, "(b f) d -> b f d", b=b)

    def forward(self, video: Tensor) -> Tensor:
        h = self.temporal(rearrange(self.frame_features(video), "b f d -> b d f"))  # (B, D, F)
        pooled = torch.cat([h.amax(-1), h.amin(-1), h.mean(-1)], dim=-1)  # (B, 3D)
        return 50.0 + 20.0 * self.head(pooled)[:, 0]  # EF percent; centred on the simulator's range


def save_echo_encoder(model: EchoEncoder, folder: str | os.PathLike, extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    from synth.outputs import staged_folder

    with staged_folder(folder, overwrite=True) as tmp:
        meta = {"kind": "echo_encoder", "format_version": 1, "config": asdict(model.cfg), **(extra or {})}
        (tmp / "config.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    return Path(folder)


_ENCODER_HINT = "train one with benchmarks/train_echo.py encoder"


def _whole(value: Any, low: int, high: int, *, step: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high and value % step == 0


def read_encoder_config(folder: str | os.PathLike) -> EncoderConfig:
    """The :class:`EncoderConfig` of an echo encoder folder, from its ``config.json`` alone (nothing built):
    ``kind`` ``echo_encoder``, ``config.size`` a multiple of 16 up to 1024, three ``channels`` and a
    ``feature_dim`` of 1 to 4096. A missing or damaged file is refused with one line naming it."""
    from synth.checkpoint import CheckpointError

    folder = Path(folder)
    path = folder / "config.json"
    if not path.is_file():
        raise MissingFileError("not an echo encoder folder (no config.json)", path=folder, hint=_ENCODER_HINT)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"config.json is not valid JSON ({err.msg}, line {err.lineno})", path=path,
                              hint=_ENCODER_HINT) from None
    except (UnicodeDecodeError, OSError) as err:
        raise CheckpointError(f"config.json cannot be read ({err})", path=path, hint=_ENCODER_HINT) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"config.json must hold a JSON object, not a {type(meta).__name__}", path=path,
                              hint=_ENCODER_HINT)
    if meta.get("kind") != "echo_encoder":
        raise CheckpointError(f"not an echo encoder (kind is {meta.get('kind')!r}, not 'echo_encoder')"[:300],
                              path=path, hint=_ENCODER_HINT)
    cfg = meta.get("config")
    if not isinstance(cfg, dict):
        raise CheckpointError("config.json has no config object (size, channels, feature_dim)", path=path,
                              hint=_ENCODER_HINT)
    channels = cfg.get("channels")
    problems = [name for name, ok in (
        ("size (a multiple of 16, 16-1024)", _whole(cfg.get("size"), 16, 1024, step=16)),
        ("channels (three whole numbers, 1-4096)", isinstance(channels, list) and len(channels) == 3
         and all(_whole(c, 1, 4096) for c in channels)),
        ("feature_dim (1-4096)", _whole(cfg.get("feature_dim"), 1, 4096))) if not ok]
    if problems:
        raise CheckpointError(f"config.{problems[0]} is missing or invalid", path=path,
                              hint=_ENCODER_HINT)
    return EncoderConfig(size=cfg["size"], channels=tuple(channels), feature_dim=cfg["feature_dim"])


def load_echo_encoder(folder: str | os.PathLike) -> EchoEncoder:
    """The echo encoder of ``folder``, in eval mode. Its ``config.json`` (:func:`read_encoder_config`) and its
    weights (present, names and shapes that match the config, read from the file header against a model built on
    the meta device, finite values: :func:`synth.checkpoint.load_weights`) are checked first; anything wrong is
    refused with one line naming the file."""
    from synth.checkpoint import WEIGHTS_NAME, CheckpointError, load_weights, weight_shapes

    folder = Path(folder)
    cfg = read_encoder_config(folder)
    where = folder / "config.json"
    try:
        with torch.device("meta"):
            probe = EchoEncoder(cfg)
    except Exception as err:  # noqa: BLE001 - any failure to build comes from the config's values
        raise CheckpointError(f"config.json describes an encoder that cannot be built ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})"[:300], path=where,
                              hint=_ENCODER_HINT) from None
    expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    del probe
    if not (folder / WEIGHTS_NAME).is_file():
        load_weights(folder)  # raises the explanatory MissingFileError
    stored = weight_shapes(folder)
    missing, unexpected = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    wrong = sorted(k for k in expected if k in stored and stored[k] != expected[k])
    if missing or unexpected or wrong:
        detail = (f"{wrong[0]} is {stored[wrong[0]]} in the file, {expected[wrong[0]]} by the config" if wrong
                  else f"missing {missing[:3]}, unexpected {unexpected[:3]}")
        raise CheckpointError(f"weights do not match config.json: {detail}"[:300], path=folder / WEIGHTS_NAME,
                              hint="the weights come from another model; " + _ENCODER_HINT)
    model = EchoEncoder(cfg)
    model.load_state_dict(load_weights(folder))  # finite values checked there
    return model.eval()


def train_echo_encoder(train, val, out: str | os.PathLike, *, steps: int = 600, batch_size: int = 16, lr: float = 1e-3,
                       seed: int = 0, eval_every: int = 100) -> dict:
    """Fit EF on ``train`` (an :class:`synth.echo.dataset.EchoTensors`), keep the weights with the lowest VAL MAE."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    model = EchoEncoder(EncoderConfig(size=train.videos.shape[-1]))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    best, best_state, history = float("inf"), None, []
    start = time.time()
    for step in tqdm(range(1, steps + 1), desc="echo encoder", unit="step"):
        model.train()
        idx = torch.randint(0, len(train), (batch_size,), generator=gen)
        x = train.video(idx)
        if torch.rand((), generator=gen) < 0.5:  # the LV sits on the right: no flips; only brightness jitter
            x = (x + 1) * (0.85 + 0.3 * torch.rand((batch_size, 1, 1, 1, 1), generator=gen)) - 1
        loss = F.mse_loss((model(x.clamp(-1, 1)) - 50.0) / 20.0, (train.ef[idx] - 50.0) / 20.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % eval_every == 0 or step == steps:
            mae = float((predict_ef(model, val.video(slice(None))) - val.ef).abs().mean())
            history.append({"step": step, "train_loss": float(loss.detach()), "val_mae_ef": mae})
            tqdm.write(f"step {step}: VAL EF MAE {mae:.2f} points")
            if mae < best:
                best, best_state = mae, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    info = {"train_clips": len(train), "val_clips": len(val), "steps": steps, "batch_size": batch_size,
            "best_val_mae_ef": best, "history": history, "train_seconds": round(time.time() - start, 1),
            "threads": torch.get_num_threads()}
    save_echo_encoder(model, out, {"training": info})
    print(f"echo encoder: best VAL EF MAE {best:.2f} points, saved to {out}")
    return info


@torch.no_grad()
def predict_ef(model: EchoEncoder, videos: Tensor, batch_size: int = 32) -> Tensor:
    model.eval()
    return torch.cat([model(videos[i:i + batch_size]) for i in range(0, len(videos), batch_size)])


@torch.no_grad()
def frame_features(model: EchoEncoder, videos: Tensor, batch_size: int = 32) -> np.ndarray:
    """videos (N, 1, F, S, S) → (N·F, D) frame embeddings."""
    model.eval()
    feats = [model.frame_features(videos[i:i + batch_size]) for i in range(0, len(videos), batch_size)]
    return rearrange(torch.cat(feats), "n f d -> (n f) d").numpy()


# -- LV area and timing --------------------------------------------------------------------------------------------

#: LV region of the apical four-chamber view at 112×112 (rows, columns): right of the septum, above the mitral
#: annulus, as the simulator places it (apex at the top centre, LV on the right of the screen).
LV_ROI = (slice(14, 64), slice(57, 86))


def lv_area_curve(video: Tensor, *, threshold: float = 0.16) -> np.ndarray:
    """video (1, F, H, W) in [-1, 1] → (F,) dark-pixel count (blood pool) in the LV region, at 112×112."""
    v = video.float()
    if v.shape[-1] != 112:
        v = F.interpolate(v, size=(112, 112), mode="bilinear", align_corners=False)
    grey = ((v.mean(0) + 1) / 2).numpy()  # (F, 112, 112) in [0, 1]
    smooth = ndi.gaussian_filter(grey, sigma=(0, 2.0, 2.0))
    return (smooth[:, LV_ROI[0], LV_ROI[1]] < threshold).sum(axis=(1, 2)).astype(np.float64)


def extrema_times(curve: np.ndarray, fps: float, *, kind: str) -> np.ndarray:
    """Times (s) of the local maxima (``kind="max"``, end-diastole) or minima (``"min"``, end-systole) of an area
    curve, temporally smoothed, with a prominence of at least 15 % of its range; parabolic sub-frame refinement.
    The first and last frames are never extrema (the true one may lie outside the clip)."""
    y = ndi.gaussian_filter1d(curve, 0.8, mode="nearest")
    y = y if kind == "max" else -y
    span = np.ptp(y)
    if span <= 0:
        return np.empty(0)
    peaks, _ = sps.find_peaks(y, prominence=0.15 * span)  # interior extrema only: an edge frame is not one
    out = []
    for p in peaks:
        a, b, c = y[p - 1], y[p], y[p + 1]
        d = a - 2 * b + c
        out.append(p + (0.5 * (a - c) / d if d < 0 else 0.0))
    return np.asarray(out) / fps


def timing_errors(event_times: np.ndarray, reference_s: np.ndarray, duration_s: float, *, margin_s: float = 0.1,
                  max_gap_s: float = 0.3) -> tuple[list[float], int]:
    """Signed errors (ms) of the nearest measured event to each reference time inside [margin, duration − margin];
    a reference with no event within ``max_gap_s`` counts as a miss. Returns (errors, misses)."""
    errors, misses = [], 0
    for r in reference_s:
        if not margin_s <= r <= duration_s - margin_s:
            continue
        if len(event_times) == 0:
            misses += 1
            continue
        d = event_times - r
        k = int(np.abs(d).argmin())
        if abs(d[k]) > max_gap_s:
            misses += 1
        else:
            errors.append(1000.0 * float(d[k]))
    return errors, misses


def timing_summary(videos: Tensor, fps: float, r_s: list[np.ndarray], t_end_s: list[np.ndarray]) -> dict[str, Any]:
    """ED vs R-peaks and ES vs T-ends over clips: MAE (ms), median signed error, misses."""
    ed_err, es_err, ed_miss, es_miss = [], [], 0, 0
    for video, r, te in zip(videos, r_s, t_end_s):
        curve = lv_area_curve(video)
        duration = len(curve) / fps
        e, m = timing_errors(extrema_times(curve, fps, kind="max"), r, duration)
        ed_err += e
        ed_miss += m
        e, m = timing_errors(extrema_times(curve, fps, kind="min"), te, duration)
        es_err += e
        es_miss += m

    def stats(err: list[float], miss: int) -> dict[str, float]:
        a = np.asarray(err)
        return {"mae_ms": float(np.abs(a).mean()) if len(a) else float("nan"),
                "median_signed_ms": float(np.median(a)) if len(a) else float("nan"),
                "matched": len(a), "missed": miss, "miss_rate": miss / max(1, miss + len(a))}

    return {"ed_vs_r_peak": stats(ed_err, ed_miss), "es_vs_t_end": stats(es_err, es_miss)}


# -- paired fidelity -----------------------------------------------------------------------------------------------


def pixel_features(videos: Tensor, size: int = 16) -> np.ndarray:
    """Generic frame features that no trained network shapes: each frame area-averaged to ``size`` × ``size``
    pixels and flattened ``(N·F, size²)`` (in [-1, 1])."""
    v = torch.as_tensor(videos).float()
    frames = v.reshape(-1, 1, *v.shape[-2:])  # (N·F, 1, H, W)
    return torch.nn.functional.adaptive_avg_pool2d(frames, size).flatten(1).numpy().astype(np.float64)


def random_cnn_features(videos: Tensor, *, seed: int = 0, width: int = 32) -> np.ndarray:
    """Generic frame features of a fixed, randomly initialised CNN (4 stride-2 conv + ReLU layers, global mean and
    standard deviation per channel; the same weights for every call with ``seed``): ``(N·F, 2·width)``. A random
    network's features separate textures and shapes surprisingly well, with no training data behind them."""
    gen = torch.Generator().manual_seed(seed)
    layers, channels = [], 1
    for _ in range(4):
        conv = torch.nn.Conv2d(channels, width, 3, stride=2, padding=1)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / (9 * channels)) ** 0.5)
            conv.bias.zero_()
        layers += [conv, torch.nn.ReLU()]
        channels = width
    net = torch.nn.Sequential(*layers).eval()
    v = torch.as_tensor(videos).float()
    frames = v.reshape(-1, 1, *v.shape[-2:])
    out = []
    with torch.no_grad():
        for i in range(0, len(frames), 256):
            h = net(frames[i:i + 256])  # (B, width, h, w)
            out.append(torch.cat([h.mean(dim=(2, 3)), h.std(dim=(2, 3), correction=0)], dim=1))
    return torch.cat(out).numpy().astype(np.float64)


def motion_statistics(videos: Tensor) -> dict[str, float]:
    """Frame-to-frame motion of clips ``(N, C, F, H, W)``: the mean absolute change between consecutive frames
    (intensity units of [-1, 1]) and its coefficient of variation over time (how pulsatile the motion is)."""
    v = torch.as_tensor(videos).float()[:, 0]  # (N, F, H, W)
    change = (v[:, 1:] - v[:, :-1]).abs().mean(dim=(2, 3))  # (N, F - 1)
    return {"mean_change": float(change.mean()),
            "change_cv": float((change.std(dim=1) / change.mean(dim=1).clamp_min(1e-9)).mean())}


def join_change(video: Tensor | np.ndarray, joins: list[int]) -> dict[str, float]:
    """How visible the joins of a clip made of windows are: the mean absolute change from frame ``j - 1`` to
    ``j`` at each join, against the same change between any other two consecutive frames (intensity units of
    [-1, 1] video, averaged over pixels). ``ratio`` = join change / median other change: about 1 for an
    invisible join, several times more at a cut."""
    v = torch.as_tensor(video).float()
    v = v.reshape(-1, *v.shape[-3:])[0] if v.ndim > 4 else v  # (F, H, W) of the first channel / clip
    v = v[0] if v.ndim == 4 else v
    change = (v[1:] - v[:-1]).abs().mean(dim=(1, 2)).numpy()  # (F - 1,): change into frame k + 1
    at = np.array([change[j - 1] for j in joins if 0 < j < len(v)])
    others = np.delete(change, [j - 1 for j in joins if 0 < j < len(v)])
    typical = float(np.median(others)) if len(others) else float("nan")
    return {"join_change": float(at.mean()) if len(at) else float("nan"), "other_change_median": typical,
            "ratio": float(at.mean() / typical) if len(at) and typical > 0 else float("nan"), "joins": int(len(at))}


def ssim_psnr(generated: Tensor, target: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-clip SSIM and PSNR (dB) of (N, 1, F, H, W) clips in [-1, 1], computed per frame in [0, 1] and averaged."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    ssim, psnr = [], []
    for g, t in zip(generated, target):
        g2 = rearrange((g.float() + 1) / 2, "c f h w -> f c h w").clamp(0, 1)
        t2 = rearrange((t.float() + 1) / 2, "c f h w -> f c h w").clamp(0, 1)
        ssim.append(float(structural_similarity_index_measure(g2, t2, data_range=1.0)))
        psnr.append(float(peak_signal_noise_ratio(g2, t2, data_range=1.0)))
    return np.asarray(ssim), np.asarray(psnr)


def _mean_ci(x: np.ndarray, seed: int = 0, n_boot: int = 1000) -> dict[str, float]:
    from evaluation.bootstrap import record_interval

    return record_interval(np.asarray(x, dtype=np.float64), lambda v: float(v.mean()), n_boot, seed)


# -- the benchmark -------------------------------------------------------------------------------------------------


def check_inputs(model_dir: str | os.PathLike, data_root: str | os.PathLike, encoder_dir: str | os.PathLike,
                 out_dir: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> None:
    """What can be told before anything loads: ``out_dir`` is not, does not lie inside and does not contain the
    data, model or encoder folder; the clip cache lies outside ``data_root`` and ``out_dir`` (synth never writes
    into its inputs); ``data_root`` holds ``FileList.csv``; the encoder's ``config.json`` is sound
    (:func:`read_encoder_config`)."""
    from evaluation.bench import check_out_apart

    data_root = Path(data_root)
    check_out_apart(out_dir, [("--data", data_root), ("--model", model_dir), ("--encoder", encoder_dir)])
    if cache_dir is not None:
        cache = Path(cache_dir).expanduser().resolve()
        for what, folder in (("--data", data_root), ("--out", out_dir)):
            inside = Path(folder).expanduser().resolve()
            if cache == inside or inside in cache.parents:
                raise DataError(f"the clip cache would lie inside the {what} folder {folder}", path=cache_dir,
                                hint="give a --cache-dir outside it, or --cache-dir none")
    if not (data_root / "FileList.csv").is_file():
        raise MissingFileError("no simulated echo dataset here (FileList.csv missing)", path=data_root,
                               hint="build one with tools/make_echo_dataset.py")
    read_encoder_config(encoder_dir)


#: Where the echo benches and benchmark scripts cache the clips they load (per dataset, :func:`clip_cache_dir`),
#: relative to the working directory: never inside the dataset itself.
ECHO_CACHE = ".cache/echo"


def clip_cache_dir(cache_dir: str | os.PathLike, data_root: str | os.PathLike) -> Path:
    """The folder under ``cache_dir`` that caches the clips of ``data_root``: one per dataset (keyed by its
    resolved path and the size and time of its ``FileList.csv``), so two datasets never share cached clips."""
    import hashlib

    root = Path(data_root).resolve()
    st = (root / "FileList.csv").stat()
    key = hashlib.sha1(f"{root}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{root.name}-{key}"


def run_echo_bench(model_dir: str | os.PathLike, data_root: str | os.PathLike, encoder_dir: str | os.PathLike,
                   out_dir: str | os.PathLike, *, split: str = "TEST", n: int = 100, steps: int | None = None,
                   guidance_scale: float = DEFAULT_GUIDANCE, ef_guidance: float = DEFAULT_EF_GUIDANCE, seed: int = 0,
                   batch_size: int = 8, n_boot: int = 200, force: bool = False,
                   cache_dir: str | os.PathLike | None = None, progress: bool = True) -> dict[str, Any]:
    """Generate one clip per ``split`` clip from its ECG (+ its EF and heart rate) and score it; writes
    ``report.json`` and ``report.md`` into ``out_dir`` (staged). The inputs (:func:`check_inputs`), the output and
    the encoder are checked before the model and the clips load; ``cache_dir`` (None: no cache) keeps the loaded
    clips for the next run (:func:`clip_cache_dir`), never inside ``data_root``."""
    from tqdm import tqdm

    from evaluation.frechet import fd_with_floor
    from synth.echo.dataset import EchoTensors
    from synth.echo.generate import load_echo_model, sample_videos, upsample
    from synth.outputs import check_output_folder, staged_folder

    start = time.time()
    data_root = Path(data_root)
    check_inputs(model_dir, data_root, encoder_dir, out_dir, cache_dir=cache_dir)
    check_output_folder(out_dir, overwrite=force)
    encoder = load_echo_encoder(encoder_dir)  # small: a damaged encoder stops the run before the model and the clips
    model = load_echo_model(model_dir)
    tokenizer = model.autoencoder
    size = tokenizer.process.height
    cache = None if cache_dir is None else clip_cache_dir(cache_dir, data_root)
    test = EchoTensors(data_root, split, size=size, limit=n, progress=progress, cache_dir=cache)
    train = EchoTensors(data_root, "TRAIN", size=size, limit=max(n, 200), progress=progress, cache_dir=cache)
    test112 = EchoTensors(data_root, split, size=112, limit=n, progress=progress, cache_dir=cache)
    if len(test) < 2:
        raise DataError(f"the {split} split has {len(test)} clip(s); need at least 2", path=data_root)
    fps = test.fps

    generated, seconds = [], []
    gen = torch.Generator().manual_seed(seed)
    for i in tqdm(range(0, len(test), batch_size), desc="generating echo", disable=not progress, unit="batch"):
        j = slice(i, min(i + batch_size, len(test)))
        cond = {"ecg": test.ecg[j], "ef": test.ef[j], "heart_rate": test.heart_rate[j]}
        t0 = time.time()
        generated.append(sample_videos(model, cond, len(test.ecg[j]), steps=steps, guidance_scale=guidance_scale,
                                       ef_guidance=ef_guidance,
                                       generator=gen))
        seconds.append((time.time() - t0) / len(test.ecg[j]))
    gen_videos = torch.cat(generated)  # (N, 1, F, S, S)
    gen112 = upsample(gen_videos)
    real = test.video(slice(None))
    real112 = test112.video(slice(None))
    recon = torch.cat([tokenizer.decode(tokenizer.encode(real[i:i + batch_size]))
                       for i in range(0, len(real), batch_size)])  # (N, 1, F, S, S), the tokenizer's round trip
    recon112 = upsample(recon)

    # Batch-1 timing, the `synth echo` situation (includes upsampling to 112×112).
    t0 = time.time()
    one = sample_videos(model, {"ecg": test.ecg[:1], "ef": test.ef[:1], "heart_rate": test.heart_rate[:1]}, 1,
                        steps=steps, guidance_scale=guidance_scale, ef_guidance=ef_guidance,
                        generator=torch.Generator().manual_seed(seed))
    upsample(one)
    batch1_s = time.time() - t0

    train_videos = train.video(slice(None))
    fd = fd_with_floor(frame_features(encoder, gen_videos), frame_features(encoder, real),
                       frame_features(encoder, train_videos), n_boot=n_boot, seed=seed)
    # The same frame FD in two feature spaces no project network shaped (EchoNet users can check them on real clips).
    generic = {name: fd_with_floor(feat(gen_videos), feat(real), feat(train_videos), n_boot=n_boot, seed=seed).as_dict()
               for name, feat in (("pixels_16x16", pixel_features), ("random_cnn", random_cnn_features))}
    ssim_g, psnr_g = ssim_psnr(gen112, real112)
    ssim_r, psnr_r = ssim_psnr(recon112, real112)
    shift = torch.roll(torch.arange(len(real112)), 1)
    ssim_u, psnr_u = ssim_psnr(gen112, real112[shift])
    ef_gen = predict_ef(encoder, gen_videos).numpy()
    ef_real = predict_ef(encoder, real).numpy()
    ef_recon = predict_ef(encoder, recon).numpy()
    ef_req = test.ef.numpy()
    timing_gen = timing_summary(gen112, fps, test.r_s, test.t_end_s)
    timing_real = timing_summary(real112, fps, test.r_s, test.t_end_s)
    timing_recon = timing_summary(recon112, fps, test.r_s, test.t_end_s)
    timing_chance = timing_summary(gen112, fps, [test.r_s[k] for k in shift], [test.t_end_s[k] for k in shift])
    report = {
        "model": str(model_dir), "encoder": str(encoder_dir), "data": str(data_root), "split": split,
        "clips": len(test), "frames": int(real.shape[2]), "fps": fps, "model_size": size,
        "steps": steps or model.process.default_steps, "guidance_scale": guidance_scale, "ef_guidance": ef_guidance, "seed": seed,
        "threads": torch.get_num_threads(), "device": "cpu",
        "frame_fd": fd.as_dict(),
        "frame_fd_generic": generic,
        "motion": {"generated": motion_statistics(gen_videos), "real": motion_statistics(real),
                   "tokenizer_reconstruction": motion_statistics(recon)},
        "ssim": {"generated_vs_paired": _mean_ci(ssim_g), "tokenizer_reconstruction": _mean_ci(ssim_r),
                 "generated_vs_unpaired": _mean_ci(ssim_u)},
        "psnr_db": {"generated_vs_paired": _mean_ci(psnr_g), "tokenizer_reconstruction": _mean_ci(psnr_r),
                    "generated_vs_unpaired": _mean_ci(psnr_u)},
        "ef": {"generated_mae": _mean_ci(np.abs(ef_gen - ef_req)), "real_mae_encoder_floor": _mean_ci(np.abs(ef_real - ef_req)),
               "tokenizer_reconstruction_mae": _mean_ci(np.abs(ef_recon - ef_req)),
               "generated_r": float(np.corrcoef(ef_gen, ef_req)[0, 1])},
        "timing": {"generated": timing_gen, "real_floor": timing_real, "tokenizer_reconstruction": timing_recon,
                   "generated_vs_other_ecg": timing_chance},
        "seconds_per_video": {"batched": float(np.mean(seconds)), "batch_size": batch_size, "batch1": batch1_s},
    }
    report["wall_s"] = time.time() - start
    with staged_folder(out_dir, overwrite=force) as tmp:
        (tmp / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        (tmp / "report.md").write_text(_markdown(report), encoding="utf-8")
    return report


def _fmt(d: dict) -> str:
    return f"{d['estimate']:.3g} [{d['low']:.3g}, {d['high']:.3g}]"


def _markdown(r: dict) -> str:
    fd, t = r["frame_fd"], r["timing"]
    lines = [
        f"# synth bench echo — {r['clips']} {r['split']} clips, {r['frames']} frames at {r['fps']:g} fps",
        "",
        f"model `{r['model']}`, encoder `{r['encoder']}`, {r['steps']} decoding steps, guidance {r['guidance_scale']} "
        f"(EF {r.get('ef_guidance', 0.0):g} more), "
        f"seed {r['seed']}, CPU with {r['threads']} thread(s); 95% bootstrap intervals in brackets.",
        "",
        "| metric | generated | reference |",
        "|---|---|---|",
        f"| frame FD (echo encoder) | {_fmt(fd['fd'])} | floor real train vs test {_fmt(fd['fd_floor'])} (n={fd['n']}) |",
        f"| SSIM vs paired ground truth | {_fmt(r['ssim']['generated_vs_paired'])} | tokenizer recon "
        f"{_fmt(r['ssim']['tokenizer_reconstruction'])}; unpaired {_fmt(r['ssim']['generated_vs_unpaired'])} |",
        f"| PSNR (dB) vs paired ground truth | {_fmt(r['psnr_db']['generated_vs_paired'])} | tokenizer recon "
        f"{_fmt(r['psnr_db']['tokenizer_reconstruction'])}; unpaired {_fmt(r['psnr_db']['generated_vs_unpaired'])} |",
        f"| EF MAE (points) | {_fmt(r['ef']['generated_mae'])} (r={r['ef']['generated_r']:.2f}) | encoder on real "
        f"{_fmt(r['ef']['real_mae_encoder_floor'])}; on tokenizer recon "
        f"{_fmt(r['ef']['tokenizer_reconstruction_mae'])} |",
    ]
    for key, name in (("ed_vs_r_peak", "ED vs R-peak"), ("es_vs_t_end", "ES vs T-end")):
        g, f, c = t["generated"][key], t["real_floor"][key], t["generated_vs_other_ecg"][key]
        rc = t["tokenizer_reconstruction"][key]
        lines.append(f"| {name} MAE (ms) | {g['mae_ms']:.0f} (median {g['median_signed_ms']:+.0f}, miss "
                     f"{100 * g['miss_rate']:.0f}%) | real {f['mae_ms']:.0f} (miss {100 * f['miss_rate']:.0f}%); "
                     f"tokenizer recon {rc['mae_ms']:.0f} (miss {100 * rc['miss_rate']:.0f}%); "
                     f"other clip's ECG {c['mae_ms']:.0f} (miss {100 * c['miss_rate']:.0f}%) |")
    for name, g in r.get("frame_fd_generic", {}).items():
        lines.append(f"| frame FD, {name.replace('_', ' ')} features | {_fmt(g['fd'])} | floor (real train) "
                     f"{_fmt(g['fd_floor'])} |")
    if "motion" in r:
        m = r["motion"]
        lines.append(f"| frame-to-frame change (mean, CV) | {m['generated']['mean_change']:.4f}, "
                     f"{m['generated']['change_cv']:.2f} | real {m['real']['mean_change']:.4f}, "
                     f"{m['real']['change_cv']:.2f}; tokenizer recon {m['tokenizer_reconstruction']['mean_change']:.4f} |")
    s = r["seconds_per_video"]
    lines += [f"| seconds per video (CPU) | {s['batch1']:.2f} at batch 1; {s['batched']:.2f} at batch "
              f"{s['batch_size']} | |", "", f"wall time {r['wall_s']:.0f} s", ""]
    return "\n".join(lines)


def print_summary(r: dict) -> None:
    """The headline figures of a ``run_echo_bench`` report, one per line."""
    fd, t = r["frame_fd"], r["timing"]
    print(f"frame FD {_fmt(fd['fd'])}  floor {_fmt(fd['fd_floor'])}  (n={fd['n']} frames per set)")
    print(f"SSIM {_fmt(r['ssim']['generated_vs_paired'])}  PSNR {_fmt(r['psnr_db']['generated_vs_paired'])} dB  "
          f"(tokenizer recon SSIM {r['ssim']['tokenizer_reconstruction']['estimate']:.3f})")
    print(f"EF MAE {_fmt(r['ef']['generated_mae'])} points  (encoder on real {r['ef']['real_mae_encoder_floor']['estimate']:.2f}, "
          f"on tokenizer recon {r['ef']['tokenizer_reconstruction_mae']['estimate']:.2f})")
    g, f = t["generated"]["ed_vs_r_peak"], t["real_floor"]["ed_vs_r_peak"]
    print(f"ED vs R-peak MAE {g['mae_ms']:.0f} ms (miss {100 * g['miss_rate']:.0f}%), real {f['mae_ms']:.0f} ms, "
          f"tokenizer recon {t['tokenizer_reconstruction']['ed_vs_r_peak']['mae_ms']:.0f} ms, other ECG "
          f"{t['generated_vs_other_ecg']['ed_vs_r_peak']['mae_ms']:.0f} ms")
    print(f"seconds per video (CPU, {r['threads']} thread(s)): {r['seconds_per_video']['batch1']:.2f} at batch 1")
