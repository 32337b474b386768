"""The PTB-XL torch dataset on the shipped sample, the collate, and the resumable sampler (alone and under
Accelerate's data-loader wrapping)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from synth.data.ptbxl import PTBXL
from synth.data.sample import sample_ptbxl_root
from synth.data.torch_data import PTBXLWindows, ResumableSampler, collate
from synth.errors import DataError


@pytest.fixture(scope="module")
def train_split() -> PTBXL:
    return PTBXL(sample_ptbxl_root()).split("train")


@pytest.fixture(scope="module")
def signals(train_split: PTBXL) -> np.ndarray:
    return train_split.load_signals(workers=1, progress=False)


def test_batches_of_the_shipped_sample(train_split: PTBXL, tmp_path) -> None:
    ds = PTBXLWindows(train_split, cache_dir=tmp_path, progress=False)
    assert isinstance(ds.signals, np.memmap)  # the cache is memory-mapped, not copied
    x, cond = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate)))
    assert x.shape == (4, 12, 1000) and x.dtype == torch.float32
    assert set(cond) == {"report", "labels", "age", "sex"}
    assert isinstance(cond["report"], list) and len(cond["report"]) == 4 and all(isinstance(r, str) for r in cond["report"])
    assert cond["labels"].shape == (4, 5) and cond["labels"].dtype == torch.float32
    assert cond["age"].shape == (4,) and cond["sex"].shape == (4,)
    first = train_split.ecg_ids[0]
    meta = train_split.metadata(first)
    expected = np.zeros(5, dtype=np.float32)
    for c in meta["superclasses"]:
        expected[ds.label_classes.index(c)] = 1
    np.testing.assert_array_equal(cond["labels"][0].numpy(), expected)
    assert cond["report"][0] == meta["report"]
    assert float(cond["sex"][0]) == {"M": 0.0, "F": 1.0}[meta["sex"]]
    np.testing.assert_allclose(x[0].numpy(), train_split.record(first).signal, atol=1e-6)  # mV, canonical order


def test_windows_leads_standardise_and_extra_fields(train_split: PTBXL, signals: np.ndarray) -> None:
    english = {i: f"record {i}" for i in train_split.ecg_ids}
    ds = PTBXLWindows(train_split, signals=signals, leads="II,V1,V5", window_length=250, window_stride=250,
                      standardise=True, cond_fields=["report", "leads", "ecg_id"], extra_fields={"report": english})
    assert len(ds) == 4 * len(train_split) and ds.sample_shape == (3, 250)
    x, cond = ds[5]  # record 1, second window
    assert x.shape == (3, 250)
    np.testing.assert_allclose(x.mean(axis=-1), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=-1), 1, atol=1e-3)
    np.testing.assert_allclose(x, cond["leads"][[1, 6, 10]])  # II, V1, V5 of the same standardised window
    assert cond["ecg_id"] == train_split.ecg_ids[1] and cond["report"] == f"record {train_split.ecg_ids[1]}"


def test_bad_fields_are_refused(train_split: PTBXL, signals: np.ndarray) -> None:
    with pytest.raises(DataError, match="unknown cond field"):
        PTBXLWindows(train_split, signals=signals, cond_fields=["report_en"])
    with pytest.raises(DataError, match="no value for"):
        PTBXLWindows(train_split, signals=signals, extra_fields={"report_en": {}}, cond_fields=["report_en"])
    with pytest.raises(DataError, match="window_length"):
        PTBXLWindows(train_split, signals=signals, window_length=2000)


def test_sampler_resumes_without_repeat_or_skip() -> None:
    sampler = ResumableSampler(23, seed=3)
    epoch0, epoch1 = sampler.permutation(0), sampler.permutation(1)
    assert sorted(epoch0.tolist()) == list(range(23)) and not np.array_equal(epoch0, epoch1)
    np.testing.assert_array_equal(ResumableSampler(23, seed=3).permutation(1), epoch1)  # a function of (seed, epoch)
    sampler.set_state(1, 10)
    assert list(sampler) == epoch1[10:].tolist() and len(sampler) == 13


def test_sampler_state_survives_accelerate_wrapping() -> None:
    from accelerate import Accelerator

    data = list(range(30))
    sampler = ResumableSampler(len(data), seed=1)
    loader = DataLoader(data, batch_size=4, sampler=sampler, drop_last=True,
                        collate_fn=lambda b: torch.tensor(b), generator=torch.Generator())
    prepared = Accelerator().prepare(loader)
    for epoch, position in [(0, 0), (0, 8), (2, 12), (0, 28)]:  # every iteration re-enters DataLoaderShard.__iter__
        sampler.set_state(epoch, position)
        got = torch.cat([b for b in prepared] or [torch.empty(0, dtype=torch.long)]).tolist()
        full = sampler.permutation(epoch)[position:]
        assert got == full[: len(full) // 4 * 4].tolist(), (epoch, position)


def test_sampler_under_two_process_sharding() -> None:
    """What each of 2 processes gets from Accelerate's BatchSamplerShard: together, the permutation from the
    resumed position in order (process p takes batches p, p + 2, ...), so position advances by 2 × batch size."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler

    sampler = ResumableSampler(50, seed=5)
    sampler.set_state(1, 16)
    shards = [list(BatchSamplerShard(BatchSampler(sampler, 4, drop_last=True), num_processes=2, process_index=p))
              for p in range(2)]
    assert len(shards[0]) == len(shards[1]) == 4  # 34 left: 8 full batches, 2 left-over samples dropped
    interleaved = [i for pair in zip(*shards) for batch in pair for i in batch]
    assert interleaved == sampler.permutation(1)[16:48].tolist()
