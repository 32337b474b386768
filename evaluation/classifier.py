"""The project's own ECG classifier and feature extractor, trained on PTB-XL folds 1-8 and selected on fold 9.

A compact 1D ResNet in the spirit of ``xresnet1d`` from the PTB-XL benchmark (Strodthoff et al. 2021, "Deep
learning for ECG analysis: benchmarks and insights from PTB-XL", IEEE JBHI 25(5); He et al. 2019 "Bag of tricks"
for the xresnet stem): a three-convolution stem, residual stages that halve the length, and concat pooling (global
average ‖ global max) whose output is the penultimate embedding. That embedding is the default feature space of
the Fréchet distances (EVALUATION.md: feature extractors are the project's own, trained on the training folds).

Training follows the benchmark's recipe at small scale: random-looking 2.5 s windows (fixed windows with a short
stride, so the dataset stays index-deterministic) at train time, and at test time the sigmoid outputs of sliding
2.5 s windows averaged over the 10 s record. Checkpoint selection looks at fold 9 only; fold 10 is scored once by
the ``evaluate`` command, which selects nothing.

Retraining (one recipe = one YAML; the same command runs under Accelerate on several GPUs)::

    python -m evaluation.classifier train configs/classifier/ptbxl_superclass.yaml out_dir=runs/clf
    accelerate launch --multi_gpu --num_processes 8 -m evaluation.classifier train \\
        configs/classifier/ptbxl_superclass.yaml out_dir=runs/clf train.data.root=/data/ptb-xl-1.0.3
    python -m evaluation.classifier evaluate runs/clf/best --split test --out runs/clf/test_metrics.json

``--out`` never replaces a file: an existing one is refused before any work, and with ``--force`` only a result
this command wrote (its ``writer`` entry is synth's mark) is replaced; the file lands by a rename.

A checkpoint is a folder ``config.json`` + ``model.safetensors`` (:func:`synth.checkpoint.save_pretrained`), whose
config names the leads, rate, classes and architecture, so :func:`load_classifier` needs nothing else. Any other
extractor plugs in through :func:`load_feature_extractor` (``module:factory`` or ``file.py:factory``) as long as
it follows :class:`FeatureExtractor`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from evaluation.utility import macro_auroc, macro_auroc_ci, per_class_auroc
from synth.checkpoint import CheckpointError, load_weights, read_config, save_pretrained
from synth.data.leads import parse_lead_set
from synth.data.ptbxl import SUPERCLASSES
from synth.errors import DataError, MissingFileError, OutputExistsError, exit_code_of

KIND = "ecg_classifier"


# -- model -----------------------------------------------------------------------------------------------------


@dataclass
class ClassifierConfig:
    """Everything :class:`ECGClassifier` needs to rebuild itself (stored in ``config.json``)."""

    leads: list[str] = field(default_factory=lambda: list(parse_lead_set("12lead")))
    fs_hz: int = 100
    classes: list[str] = field(default_factory=lambda: list(SUPERCLASSES))
    #: PTB-XL label family of ``classes`` (``superclasses``, ``subclasses``, ``rhythm``, ``form``).
    label_kind: str = "superclasses"
    stem_width: int = 32
    #: Channels of the residual stages; each stage after the first halves the length.
    widths: list[int] = field(default_factory=lambda: [64, 128, 128, 256])
    blocks_per_stage: int = 1
    #: Odd kernel size in samples (5 at 100 Hz = 50 ms, the xresnet1d choice for PTB-XL at 100 Hz).
    kernel_size: int = 5
    dropout: float = 0.25
    #: Window the network is trained on (s); longer inputs are scored by sliding windows of this length.
    window_s: float = 2.5
    #: Step between test-time windows (s).
    stride_s: float = 1.25

    def __post_init__(self) -> None:
        self.leads = list(parse_lead_set(self.leads))
        if self.kernel_size % 2 == 0 or self.kernel_size < 1:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if not self.classes or not self.widths:
            raise ValueError("classes and widths must not be empty")
        if self.window_s <= 0 or self.stride_s <= 0:
            raise ValueError("window_s and stride_s must be > 0")

    @property
    def window_length(self) -> int:
        return int(round(self.window_s * self.fs_hz))

    @property
    def window_stride(self) -> int:
        return max(1, int(round(self.stride_s * self.fs_hz)))


def _conv_bn(c_in: int, c_out: int, k: int, stride: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv1d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
                               nn.BatchNorm1d(c_out)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _Block(nn.Module):
    """Basic residual block; the shortcut average-pools then projects when the shape changes (xresnet's 'D'
    variant, He et al. 2019 §5.1), and the last BN starts at zero so the block starts as the identity."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(c_in, c_out, k, stride), _conv_bn(c_out, c_out, k, act=False))
        nn.init.zeros_(self.body[-1][1].weight)
        pool = nn.AvgPool1d(stride, ceil_mode=True) if stride > 1 else nn.Identity()
        proj = _conv_bn(c_in, c_out, 1, act=False) if c_in != c_out else nn.Identity()
        self.shortcut = nn.Sequential(pool, proj)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ECGClassifier(nn.Module):
    """Multi-label ECG classifier: ``(B, C, T)`` mV at ``cfg.fs_hz`` → logits ``(B, K)``.

    Fully convolutional with global pooling, so any ``T`` works; :meth:`predict` and :meth:`features` score
    records longer than the training window by sliding windows (as the PTB-XL benchmark did).
    """

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        k, w = cfg.kernel_size, cfg.stem_width
        self.stem = nn.Sequential(_conv_bn(len(cfg.leads), w, k, stride=2), _conv_bn(w, w, k), _conv_bn(w, cfg.widths[0], k),
                                  nn.MaxPool1d(3, stride=2, padding=1))
        blocks, c_in = [], cfg.widths[0]
        for i, c_out in enumerate(cfg.widths):
            for j in range(cfg.blocks_per_stage):
                blocks.append(_Block(c_in, c_out, k, stride=2 if (i > 0 and j == 0) else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = 2 * c_in
        self.head = nn.Sequential(nn.BatchNorm1d(self.feature_dim), nn.Dropout(cfg.dropout),
                                  nn.Linear(self.feature_dim, len(cfg.classes)))

    # -- the protocol the trainer and the checkpoint code use ----------------------------------------------------
    @classmethod
    def from_config(cls, cfg: ClassifierConfig | dict[str, Any]) -> ECGClassifier:
        if isinstance(cfg, dict):
            cfg = ClassifierConfig(**{k: v for k, v in cfg.items() if k != "kind"})
        return cls(cfg)

    def config_dict(self) -> dict[str, Any]:
        return {"kind": KIND, **dataclasses.asdict(self.cfg)}

    def frozen_submodels(self) -> dict[str, nn.Module]:
        return {}

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate embedding of each input as given (no windowing): ``(B, C, T)`` → ``(B, F)``."""
        h = self.blocks(self.stem(x))  # (B, widths[-1], ~T/2^len(widths))
        return torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1)  # (B, 2 * widths[-1])

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, K)`` of ``x`` ``(B, C, T)`` float32 mV, the whole input at once."""
        return self.head(self.embed(x))

    def loss(self, x: Tensor, cond: dict[str, Any]):
        """Multi-label BCE with logits against ``cond['labels']`` ``(B, K)`` multi-hot."""
        from synth.generative.base import LossOutput

        logits = self(x)
        loss = F.binary_cross_entropy_with_logits(logits, cond["labels"].to(logits))
        return LossOutput(loss, {"bce": float(loss.detach())})

    # -- scoring whole records -----------------------------------------------------------------------------------
    def _windows(self, x: Tensor) -> tuple[Tensor, int]:
        w, s = self.cfg.window_length, self.cfg.window_stride
        if x.shape[-1] <= w:
            return x, 1
        starts = list(range(0, x.shape[-1] - w + 1, s))
        if starts[-1] != x.shape[-1] - w:  # cover the tail too
            starts.append(x.shape[-1] - w)
        windows = torch.stack([x[..., a : a + w] for a in starts], dim=1)  # (B, n, C, W)
        return windows.flatten(0, 1), len(starts)  # (B * n, C, W)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Probabilities ``(B, K)``: sigmoid outputs averaged over sliding windows of ``cfg.window_s``."""
        windows, n = self._windows(x)
        return torch.sigmoid(self(windows)).unflatten(0, (x.shape[0], n)).mean(dim=1)

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(B, F)`` averaged over sliding windows of ``cfg.window_s``."""
        windows, n = self._windows(x)
        return self.embed(windows).unflatten(0, (x.shape[0], n)).mean(dim=1)


def save_classifier(model: ECGClassifier, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Export ``config.json`` + ``model.safetensors`` (the project's one checkpoint format)."""
    return save_pretrained(model, folder, overwrite=overwrite)


def load_classifier(folder: str | os.PathLike, *, device: str | torch.device = "cpu") -> ECGClassifier:
    """Rebuild an exported :class:`ECGClassifier` from its folder, in eval mode."""
    meta = read_config(folder)
    if meta.get("model", {}).get("kind") != KIND:
        raise CheckpointError(f"not an {KIND} export (model.kind is {meta.get('model', {}).get('kind')!r})",
                              path=Path(folder) / "config.json", hint="generators load with synth.checkpoint")
    model = ECGClassifier.from_config(meta["model"])
    try:
        model.load_state_dict(load_weights(folder), strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"weights do not match config.json ({str(err).splitlines()[0]})",
                              path=folder) from None
    return model.to(device).eval()


# -- feature extractors ----------------------------------------------------------------------------------------


@runtime_checkable
class FeatureExtractor(Protocol):
    """What the evaluation suite needs from a feature space: the leads and rate it reads, and
    ``features(x (B, C, T) float32 mV) -> (B, F) float`` numpy."""

    leads: Sequence[str]
    fs_hz: float

    def features(self, x: np.ndarray) -> np.ndarray: ...


class ClassifierFeatures:
    """:class:`FeatureExtractor` over an :class:`ECGClassifier` (numpy in, numpy out, batched, no grad)."""

    def __init__(self, model: ECGClassifier, *, batch_size: int = 256, device: str | torch.device = "cpu"):
        self.model = model.to(device).eval()
        self.leads, self.fs_hz = tuple(model.cfg.leads), float(model.cfg.fs_hz)
        self.batch_size, self.device = batch_size, device

    def _map(self, fn, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != len(self.leads):
            raise DataError(f"expected (B, {len(self.leads)}, T) signals for leads {list(self.leads)}, got {x.shape}")
        parts = [fn(torch.from_numpy(x[i : i + self.batch_size]).to(self.device)).cpu()
                 for i in range(0, len(x), self.batch_size)]
        return torch.cat(parts).numpy().astype(np.float32)

    def features(self, x: np.ndarray) -> np.ndarray:
        return self._map(self.model.features, x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._map(self.model.predict, x)


def load_feature_extractor(spec: str | os.PathLike) -> FeatureExtractor:
    """A feature extractor from a checkpoint folder (an :class:`ECGClassifier` export) or a user factory.

    ``spec`` is a folder with ``config.json``, or ``package.module:factory`` / ``path/to/file.py:factory``, where
    ``factory()`` returns an object with ``leads``, ``fs_hz`` and ``features(x) -> (B, F)`` (e.g. a wrapper around
    ECGFounder weights the user has locally).
    """
    text = str(spec)
    if Path(text).is_dir():
        return ClassifierFeatures(load_classifier(text))
    if ":" not in text:
        raise MissingFileError("no such checkpoint folder", path=text,
                               hint="pass a folder with config.json, or module:factory / file.py:factory")
    target, name = text.rsplit(":", 1)
    if target.endswith(".py"):
        spec_obj = importlib.util.spec_from_file_location(Path(target).stem, target)
        if spec_obj is None or spec_obj.loader is None:
            raise MissingFileError("cannot import the extractor file", path=target)
        module = importlib.util.module_from_spec(spec_obj)
        spec_obj.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    extractor = getattr(module, name)()
    if not isinstance(extractor, FeatureExtractor):
        raise DataError(f"{text} returned {type(extractor).__name__}, which lacks leads / fs_hz / features(x)")
    return extractor


# -- evaluation and selection ----------------------------------------------------------------------------------


def score_split(model: ECGClassifier, signals: np.ndarray, labels: np.ndarray, *, n_boot: int = 0,
                seed: int = 0, batch_size: int = 256) -> dict[str, Any]:
    """Macro and per-class AUROC of ``model`` on ``signals (N, C, T)`` mV against ``labels (N, K)``."""
    scores = ClassifierFeatures(model, batch_size=batch_size).predict(signals)
    out: dict[str, Any] = {"records": int(len(labels)), "macro_auroc": macro_auroc(scores, labels),
                           "per_class_auroc": dict(zip(model.cfg.classes, per_class_auroc(scores, labels).tolist())),
                           "positives": dict(zip(model.cfg.classes, labels.sum(axis=0).astype(int).tolist()))}
    if n_boot:
        out["macro_auroc_ci"] = macro_auroc_ci(scores, labels, n_boot=n_boot, seed=seed).as_dict()
    return out


class Fold9Selector:
    """The trainer's ``on_sample`` hook: scores the current (EMA) weights on the validation split and exports
    them to ``folder`` when the macro AUROC improves. It is built from validation data only, so nothing it
    decides can depend on the test fold."""

    def __init__(self, val_signals: np.ndarray, val_labels: np.ndarray, folder: str | os.PathLike, *,
                 leads_index: np.ndarray | None = None):
        self.signals = val_signals if leads_index is None else val_signals[:, leads_index]
        self.labels = np.asarray(val_labels, np.float32)
        self.folder = Path(folder)
        self.best, self.best_step, self.history = -np.inf, -1, []

    def __call__(self, model: nn.Module, step: int, _out_dir: Path) -> None:
        result = score_split(model, np.asarray(self.signals), self.labels)
        self.history.append({"step": step, "val_macro_auroc": result["macro_auroc"]})
        print(f"[fold 9] step {step}: macro AUROC {result['macro_auroc']:.4f}", flush=True)
        if result["macro_auroc"] > self.best:
            self.best, self.best_step = result["macro_auroc"], step
            save_classifier(model, self.folder, overwrite=True)
        (self.folder.parent / "selection.json").write_text(json.dumps(
            {"selected_on": "validation split (PTB-XL fold 9)", "best_step": self.best_step,
             "best_val_macro_auroc": self.best, "history": self.history}, indent=2))


# -- the recipe ------------------------------------------------------------------------------------------------


@dataclass
class Recipe:
    """A classifier YAML (``configs/classifier/``): the model, the trainer settings, where the run goes."""

    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    train: dict[str, Any] = field(default_factory=dict)
    out_dir: str = "runs/classifier"


def load_recipe(path: str | os.PathLike, overrides: Sequence[str] = ()) -> tuple[ClassifierConfig, Any, Path]:
    """``(model config, TrainConfig, out_dir)`` of a classifier YAML with ``key=value`` overrides applied."""
    from omegaconf import OmegaConf

    from synth.config import validate
    from synth.training.config import TrainConfig, apply_overrides

    path = Path(path)
    if not path.is_file():
        raise MissingFileError("classifier config not found", path=path, hint="see configs/classifier/")
    from synth.config import read_yaml

    node = OmegaConf.to_container(apply_overrides(read_yaml(path), list(overrides)), resolve=True)
    recipe = validate(Recipe, node, source=str(path))
    model_cfg = recipe.model if isinstance(recipe.model, ClassifierConfig) else ClassifierConfig(**recipe.model)
    train_cfg = validate(TrainConfig, {**recipe.train, "out_dir": recipe.out_dir}, source=str(path),
                         keypath="train")
    return model_cfg, train_cfg, Path(recipe.out_dir)


def train(config: str | os.PathLike, overrides: Sequence[str] = ()) -> Path:
    """Train the classifier a YAML describes with the project's trainer; select on the validation split.

    Returns ``out_dir/best`` (the export with the best fold-9 macro AUROC). The test split is never loaded.
    """
    from accelerate.utils import set_seed

    from synth.data.ptbxl import PTBXL
    from synth.data.torch_data import PTBXLWindows
    from synth.training.trainer import Trainer, resolve_config_path

    config = Path(config)
    model_cfg, train_cfg, out_dir = load_recipe(config, overrides)
    d = train_cfg.data
    if d.fs_hz != model_cfg.fs_hz:
        raise DataError(f"train.data.fs_hz {d.fs_hz} differs from model.fs_hz {model_cfg.fs_hz}")
    ptbxl = PTBXL(resolve_config_path(d.root, config), fs_hz=d.fs_hz)
    cache = None if d.cache_dir is None else resolve_config_path(d.cache_dir, config)
    train_split, val_split = ptbxl.split("train"), ptbxl.split("val")
    train_data = PTBXLWindows(train_split, cache_dir=cache, leads=model_cfg.leads, cond_fields=("labels",),
                              label_kind=model_cfg.label_kind, label_classes=model_cfg.classes,
                              window_length=model_cfg.window_length, window_stride=d.window_stride,
                              progress=train_cfg.progress)
    val_signals = val_split.load_signals(cache_dir=cache, progress=train_cfg.progress)
    val_labels, _ = val_split.multi_hot(model_cfg.label_kind, model_cfg.classes)
    set_seed(train_cfg.seed)
    model = ECGClassifier(model_cfg)
    selector = Fold9Selector(val_signals, val_labels, out_dir / "best", leads_index=train_data.lead_index)
    started = time.perf_counter()
    Trainer(model, train_cfg, train_data, None, on_sample=selector).fit()
    wall = time.perf_counter() - started
    if out_dir.joinpath("selection.json").exists():
        info = json.loads(out_dir.joinpath("selection.json").read_text())
        info.update(train_wall_s=wall, train_records=len(train_split), train_windows=len(train_data),
                    steps=train_cfg.steps, batch_size=train_cfg.batch_size,
                    params=sum(p.numel() for p in model.parameters()), torch_threads=torch.get_num_threads())
        out_dir.joinpath("selection.json").write_text(json.dumps(info, indent=2))
    return out_dir / "best"


def evaluate(checkpoint: str | os.PathLike, *, root: str | os.PathLike, split: str, cache_dir: str | None = None,
             n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Score an export on one PTB-XL split (macro AUROC with a bootstrap 95% CI, per-class AUROC). Selects
    nothing: run it on the test split once, after the checkpoint has been chosen on validation."""
    from synth.data.leads import LEADS_12
    from synth.data.ptbxl import PTBXL

    model = load_classifier(checkpoint)
    data = PTBXL(root, fs_hz=model.cfg.fs_hz).split(split)
    signals = data.load_signals(cache_dir=cache_dir, progress=False)
    signals = np.asarray(signals)[:, [LEADS_12.index(lead) for lead in model.cfg.leads]]
    labels, _ = data.multi_hot(model.cfg.label_kind, model.cfg.classes)
    return {"split": split, **score_split(model, signals, labels, n_boot=n_boot, seed=seed)}


def json_out_refusal(path: str | os.PathLike) -> str | None:
    """Why ``--force`` may not replace the file ``path`` (None when it is a JSON result synth wrote: an object whose
    ``writer`` is synth's mark, as :func:`write_json_out` writes it). JSON has no other mark to tell synth's from
    the user's."""
    from synth.outputs import is_mark, protected_reason

    p = Path(path)
    reason = protected_reason(p)
    if reason:
        return reason
    if p.is_symlink() or not p.is_file():
        return "it is not a file synth wrote"
    try:
        writer = json.loads(p.read_text(encoding="utf-8")).get("writer", "")
    except (OSError, ValueError, AttributeError):
        writer = ""
    return None if is_mark(str(writer)) else 'synth did not write it (no "writer": "synth X.Y.Z" entry)'


def check_json_out(path: str | os.PathLike, *, force: bool = False) -> None:
    """Refuse, before any work, a JSON output ``path`` that exists, unless ``force`` and synth wrote it."""
    from synth.outputs import OutputRefusedError

    p = Path(path)
    if not (p.exists() or p.is_symlink()):
        return
    if not force:
        raise OutputExistsError("output already exists", path=p, hint="choose another name or pass --force")
    reason = json_out_refusal(p)
    if reason:
        raise OutputRefusedError(f"--force will not replace it: {reason}", path=p,
                                 hint="choose another output, or move it away yourself if you mean to lose it")


def write_json_out(path: str | os.PathLike, result: dict[str, Any], *, force: bool = False) -> Path:
    """Write ``result`` with synth's mark to ``path`` by a rename (checked again: a file put there by hand while
    the command worked is not replaced either)."""
    from synth.io_utils import atomic_write_text
    from synth.outputs import WRITER

    check_json_out(path, force=force)
    return atomic_write_text(path, json.dumps({"writer": WRITER, **result}, indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.classifier", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train on folds 1-8, keep the best fold-9 checkpoint in out_dir/best")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. out_dir=runs/clf train.steps=2000")
    p = sub.add_parser("evaluate", help="score an export on a split (AUROC with bootstrap CI)")
    p.add_argument("checkpoint")
    p.add_argument("--root", default="../shared/data/ptbxl")
    p.add_argument("--split", choices=("train", "val", "test"), default="val")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--out", default=None, help="write the result as JSON here (a new file)")
    p.add_argument("--force", action="store_true", help="replace an --out file this command wrote (nothing else)")
    args = parser.parse_args(argv)
    return exit_code_of(parser.prog, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    if args.command == "train":
        print(train(args.config, args.overrides))
        return 0
    if args.out:
        check_json_out(args.out, force=args.force)  # before the data and the model load
    result = evaluate(args.checkpoint, root=args.root, split=args.split, cache_dir=args.cache_dir, n_boot=args.n_boot)
    if args.out:
        write_json_out(args.out, result, force=args.force)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
