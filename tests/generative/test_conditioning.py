"""The conditioning contract: every adapter → tokens (B, L, D) + mask (B, L); one stack; guidance dropout."""

from __future__ import annotations

import pytest
import torch

from synth.conditioning import ConditioningStack
from synth.conditioning.demographics import DemographicsAdapter
from synth.conditioning.labels import LabelsAdapter
from synth.conditioning.leads import ECGAdapter, LeadsAdapter
from synth.conditioning.ppg import PPGAdapter
from synth.conditioning.stack import ConditioningError
from synth.conditioning.text import TextAdapter
from synth.config import SignalConfig
from synth.generative.networks.layers import masked_attention

SIGNAL = SignalConfig(channels=12, length=100, fs_hz=100.0)
D = 16


def _stack() -> ConditioningStack:
    torch.manual_seed(0)
    adapters = {
        "labels": LabelsAdapter(LabelsAdapter.Config(num_labels=4), dim=D, signal=SIGNAL),
        "demographics": DemographicsAdapter(DemographicsAdapter.Config(), dim=D, signal=SIGNAL),
        "leads": LeadsAdapter(LeadsAdapter.Config(patch_size=25, as_channels=True), dim=D, signal=SIGNAL),
        "ppg": PPGAdapter(PPGAdapter.Config(hidden_channels=8, downsample=4), dim=D, signal=SIGNAL),
    }
    return ConditioningStack(
        adapters, dim=D, p_drop={"labels": 0.5, "demographics": 0.5, "leads": 0.5, "ppg": 0.5}
    )


def _cond(batch: int = 3) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "labels": torch.tensor([[1, 0, 0, 1], [0, 0, 0, 0], [0, 1, 1, 0]], dtype=torch.float32)[:batch],
        "age": torch.tensor([60.0, float("nan"), 30.0])[:batch],
        "sex": torch.tensor([0.0, 1.0, float("nan")])[:batch],
        "heart_rate": torch.tensor([72.0, 110.0, 55.0])[:batch],
        "leads": torch.randn(batch, 12, 100, generator=g),
        "lead_mask": torch.tensor([[True] * 12, [True, False] * 6, [False] * 11 + [True]])[:batch],
        "ppg": torch.randn(batch, 1, 100, generator=g),
    }


def test_stack_emits_tokens_mask_and_channels_with_fixed_lengths():
    stack = _stack().eval()
    out = stack(_cond(), 3)
    length = 5 + 3 + 12 * 4 + 25  # labels K+1, demographics 3, leads 12 × ceil(100/25), ppg 100/4
    assert (
        out.tokens.shape == (3, length, D) and out.mask.shape == (3, length) and out.mask.dtype == torch.bool
    )
    assert out.channels.shape == (3, 24, 100)
    labels_mask = out.mask[:, :5]
    assert labels_mask.tolist() == [
        [True, True, False, False, True],
        [True] + [False] * 4,
        [True, False, True, True, False],
    ]
    assert out.mask[:, 5:8].tolist() == [[True, True, True], [False, True, True], [True, False, True]]
    assert out.mask[1, 8:56].sum() == 6 * 4 and out.mask[2, 8:56].sum() == 4


def test_dropped_and_absent_modalities_become_the_null_token():
    stack = _stack().eval()
    cond = _cond()
    drop = torch.tensor([[False, False, True, False]] * 3)  # drop the leads
    out = stack(cond, 3, drop=drop)
    leads = slice(8, 56)
    expected = stack.null_tokens[2] + stack.modality_embedding[2]
    assert torch.allclose(out.tokens[:, leads], expected.expand(3, 48, D))
    assert out.mask[:, leads].sum(1).tolist() == [1, 1, 1]  # exactly one visible null token
    assert torch.count_nonzero(out.channels) == 0
    absent = stack({k: v for k, v in cond.items() if k not in ("leads", "lead_mask")}, 3)
    assert torch.equal(absent.tokens, out.tokens) and torch.equal(absent.mask, out.mask)
    uncond = stack.unconditional(3)
    assert uncond.tokens.shape == out.tokens.shape and int(uncond.mask.sum()) == 3 * 4


def test_training_dropout_follows_p_drop():
    stack = _stack().train()
    drop = stack.sample_drop(20_000, generator=None)
    assert drop.shape == (20_000, 4)
    assert torch.allclose(drop.float().mean(0), torch.full((4,), 0.5), atol=0.02)


def test_unknown_keys_and_wrong_batch_sizes_are_refused():
    stack = _stack()
    with pytest.raises(ConditioningError, match="reprot"):
        stack({"reprot": ["x"]}, 1)
    with pytest.raises(ConditioningError, match="batch size"):
        stack({"ppg": torch.randn(2, 1, 100)}, 3)


def test_hidden_leads_do_not_leak():
    adapter = LeadsAdapter(LeadsAdapter.Config(patch_size=25, as_channels=True), dim=D, signal=SIGNAL)
    cond = _cond()
    before = adapter(cond)
    changed = dict(cond, leads=cond["leads"].clone())
    changed["leads"][~cond["lead_mask"]] = 99.0
    after = adapter(changed)
    assert torch.equal(before.tokens, after.tokens) and torch.equal(before.channels, after.channels)
    assert torch.equal(before.channels[:, 12:, 0], cond["lead_mask"].float())


def test_ecg_adapter_reads_its_own_keys_and_length():
    adapter = ECGAdapter(ECGAdapter.Config(patch_size=50, length=250), dim=D, signal=SIGNAL)
    out = adapter({"ecg": torch.randn(2, 12, 250)})
    assert out.tokens.shape == (2, 12 * 5, D) and bool(out.mask.all())
    assert adapter.present({"ecg": torch.zeros(1)}) and not adapter.present({"leads": torch.zeros(1)})


def test_all_masked_attention_row_is_zero_not_nan():
    q = torch.randn(2, 2, 5, 4, requires_grad=True)
    k = torch.randn(2, 2, 3, 4)
    v = torch.randn(2, 2, 3, 4)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    out = masked_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.count_nonzero(out[1]) == 0
    out.sum().backward()
    assert torch.isfinite(q.grad).all()
    ref = torch.softmax(q[0] @ k[0, :, [0, 2]].transpose(-1, -2) / 2.0, dim=-1) @ v[0, :, [0, 2]]
    assert torch.allclose(out[0], ref, atol=1e-5)


@pytest.mark.minilm
@pytest.mark.parametrize(("level", "length"), [("token", 12), ("sentence", 1)])
def test_text_adapter_with_the_real_offline_minilm(level, length):
    adapter = TextAdapter(TextAdapter.Config(level=level, max_tokens=12), dim=D, signal=SIGNAL)
    reports = ["sinus rhythm with first degree AV block", "", "atrial fibrillation"]
    raw = adapter.embed_texts([r for r in reports if r])
    assert all(e.shape[-1] == 384 and e.shape[0] <= length for e in raw)
    if level == "sentence":  # MiniLM's sentence embeddings are unit-normalised
        assert torch.allclose(raw[0].norm(dim=-1), torch.ones(1), atol=1e-4)
    cached = len(adapter._cache)
    out = adapter({"report": reports})
    assert len(adapter._cache) == cached  # second pass over the same texts hits the cache
    assert out.tokens.shape == (3, length, D) and not bool(out.mask[1].any()) and bool(out.mask[0].any())
    # the frozen encoder is not part of the module: only the projection is trained and exported
    assert set(adapter.state_dict()) == {"proj.0.weight", "proj.0.bias", "proj.1.weight", "proj.1.bias"}


def test_attention_backend_is_checked_and_xformers_is_optional(monkeypatch):
    """SDPA by default; an unknown backend or xformers without CUDA fails with a clear error, not deep inside."""
    import torch

    from synth.errors import SynthError
    from synth.generative.networks.layers import attention_backend, masked_attention

    q = k = v = torch.randn(2, 2, 5, 4)
    mask = torch.tensor([[True, True, False, False, True], [False] * 5])
    monkeypatch.delenv("SYNTH_ATTENTION", raising=False)
    assert attention_backend() == "sdpa"
    out = masked_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.equal(out[1], torch.zeros_like(out[1]))
    monkeypatch.setenv("SYNTH_ATTENTION", "flash3")
    with pytest.raises(SynthError, match="not an attention backend"):
        masked_attention(q, k, v, mask)
    monkeypatch.setenv("SYNTH_ATTENTION", "xformers")
    with pytest.raises(SynthError, match="xformers"):  # not installed here, or installed but no CUDA
        masked_attention(q, k, v, mask)


@pytest.mark.minilm
@pytest.mark.parametrize("level", ["token", "sentence"])
def test_a_report_embeds_bitwise_the_same_whatever_it_is_encoded_with(level):
    """A record's conditions must not depend on the other reports of its batch or of earlier batches (cohorts are
    identical across processes and restarts only if this holds)."""
    report = "sinus rhythm. normal ecg."
    others = ["sinus tachycardia. left axis deviation. left bundle branch block, most commonly due to ischaemic "
              "heart disease.", "vorhofflimmern", "sinus brady. normal ecg.", "sinusrhythmus linkstyp sonst normales ekg"]
    alone = TextAdapter(TextAdapter.Config(level=level), dim=D, signal=SIGNAL).embed_texts([report])[0]
    mixed = TextAdapter(TextAdapter.Config(level=level), dim=D, signal=SIGNAL).embed_texts([*others, report])[-1]
    assert torch.equal(alone, mixed)
