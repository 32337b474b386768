"""MaskGIT's pure parts on token tensors: mask schedules, training masks and the iterative decoding loop."""

from __future__ import annotations

import math

import pytest
import torch

from synth.generative.maskgit import SCHEDULES, cosine_schedule, iterative_decode, mask_tokens

from .conftest import CONFIGS, make_cond, make_model, perturb

N_TOKENS, K, MASK = 20, 7, 7


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_start_all_masked_end_unmasked_and_never_increase(name):
    schedule = SCHEDULES[name]
    r = torch.linspace(0, 1, 101)
    gamma = schedule(r)
    assert float(gamma[0]) == pytest.approx(1.0) and float(gamma[-1]) == pytest.approx(0.0, abs=1e-6)
    assert torch.all(gamma[1:] <= gamma[:-1] + 1e-7)


def test_cosine_schedule_is_cos_pi_r_over_2():
    assert float(cosine_schedule(torch.tensor(0.5))) == pytest.approx(math.cos(math.pi / 4))


def test_mask_tokens_masks_ceil_ratio_n_positions_and_keeps_the_rest():
    ids = torch.randint(0, K, (4, N_TOKENS), generator=torch.Generator().manual_seed(0))
    ratio = torch.tensor([0.0, 0.12, 0.5, 1.0])
    x_t, masked = mask_tokens(ids, ratio, MASK, torch.Generator().manual_seed(1))
    assert masked.sum(1).tolist() == [1, 3, 10, 20]  # ⌈γ N⌉, at least one
    assert torch.all(x_t[masked] == MASK) and torch.equal(x_t[~masked], ids[~masked])
    again, _ = mask_tokens(ids, ratio, MASK, torch.Generator().manual_seed(1))
    assert torch.equal(x_t, again)


class Recorder:
    """A logits_fn with fixed random logits per (position, current id); it records every input it sees."""

    def __init__(self, seed: int = 0):
        self.table = torch.randn(N_TOKENS, K + 1, K, generator=torch.Generator().manual_seed(seed))
        self.seen: list[torch.Tensor] = []

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        self.seen.append(ids.clone())
        return self.table[torch.arange(N_TOKENS), ids]  # (B, N, K)


@pytest.mark.parametrize("steps", [1, 4, 8])
def test_decoding_follows_the_schedule_commits_everything_and_never_remasks(steps):
    fn = Recorder()
    out = iterative_decode(fn, 3, N_TOKENS, MASK, steps=steps, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, N_TOKENS) and out.dtype == torch.long
    assert not (out == MASK).any() and int(out.max()) < K
    assert len(fn.seen) == steps and torch.all(fn.seen[0] == MASK)
    states = [*fn.seen, out]
    for i, (before, after) in enumerate(zip(states[:-1], states[1:])):
        committed = before != MASK
        assert torch.equal(after[committed], before[committed])  # a committed token never changes
        still_masked = (after == MASK).sum(1)
        expected = min(
            math.floor(float(cosine_schedule(torch.tensor((i + 1) / steps))) * N_TOKENS),
            int((before == MASK).sum(1)[0]) - 1,
        )
        assert still_masked.tolist() == [max(expected, 0)] * 3


def test_decoding_is_deterministic_under_a_generator():
    a = iterative_decode(Recorder(), 4, N_TOKENS, MASK, steps=5, generator=torch.Generator().manual_seed(0))
    b = iterative_decode(Recorder(), 4, N_TOKENS, MASK, steps=5, generator=torch.Generator().manual_seed(0))
    c = iterative_decode(Recorder(), 4, N_TOKENS, MASK, steps=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_zero_temperatures_decode_greedily():
    fn = Recorder()
    out = iterative_decode(fn, 2, N_TOKENS, MASK, steps=1, temperature=0.0, choice_temperature=0.0)
    assert torch.equal(out, fn.table[torch.arange(N_TOKENS), MASK].argmax(-1).expand(2, -1))


def test_maskgit_trains_on_the_frozen_tokenizer_codes_and_masks_only_some():
    model = make_model(CONFIGS / "maskgit_tiny.yaml")
    perturb(model)
    tokenizer = model.frozen_submodels()["autoencoder"]
    x = 0.3 * torch.randn(4, 12, 64)
    assert torch.equal(model.to_process(x), tokenizer.encode(x))
    assert model.process_shape == tokenizer.latent_shape and model.mask_id == tokenizer.codebook_size
    model.train()
    out = model.loss(x, make_cond(model, 4))
    assert torch.isfinite(out.loss) and 0.0 <= out.metrics["masked_accuracy"] <= 1.0
    codes_before = tokenizer.quantizer.codebook.clone()
    out.loss.backward()
    assert torch.equal(tokenizer.quantizer.codebook, codes_before)  # the frozen tokenizer's EMA does not move


@pytest.mark.parametrize("steps", [1, 4])
def test_known_codes_are_kept_and_the_schedule_runs_over_the_free_ones(steps):
    known = torch.full((2, N_TOKENS), MASK, dtype=torch.long)
    known[:, :5] = torch.arange(5) % K  # given, e.g. the frames shared with the window before
    fn = Recorder()
    out = iterative_decode(fn, 2, N_TOKENS, MASK, steps=steps, generator=torch.Generator().manual_seed(0),
                           known=known)
    assert torch.equal(out[:, :5], known[:, :5]) and not (out == MASK).any()
    assert torch.equal(fn.seen[0], known)  # the network saw the given codes from the first step
    free = N_TOKENS - 5
    if steps > 1:
        expected = math.floor(float(cosine_schedule(torch.tensor(1 / steps))) * free)
        assert (fn.seen[1] == MASK).sum(1).tolist() == [expected] * 2
    with pytest.raises(ValueError, match="known codes must be"):
        iterative_decode(fn, 2, N_TOKENS, MASK, steps=1, known=known[:1])
