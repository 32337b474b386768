"""Autoencoders and latent models: the vector quantiser on constructed cases, the VAE's KL warm-up and latent
scale, padding of odd lengths, and diffusion/flow running in the space of a frozen VAE export."""

from __future__ import annotations

import math

import pytest
import torch

from synth.checkpoint import load_pretrained, save_pretrained
from synth.config import ConfigError, load_config
from synth.generative import build_model
from synth.generative.quantize import VectorQuantizer, code_usage

from .conftest import CONFIGS, make_cond, make_model, make_signal, perturb

VAE_TINY = CONFIGS / "vae_tiny.yaml"
FLOW_LATENT_TINY = CONFIGS / "flow_latent_tiny.yaml"


def _quantizer(codebook: torch.Tensor, counts: list[float], threshold: float = 0.5) -> VectorQuantizer:
    vq = VectorQuantizer(codebook.shape[0], codebook.shape[1], decay=0.5, dead_code_threshold=threshold)
    with torch.no_grad():
        vq.codebook.copy_(codebook)
        vq.cluster_size.copy_(torch.tensor(counts))
        vq.embed_sum.copy_(codebook * vq.cluster_size[:, None])
    return vq.train()


# -- quantiser -----------------------------------------------------------------------------------------------------
def test_code_usage_on_constructed_histograms():
    assert code_usage(torch.zeros(50, dtype=torch.long), 8) == pytest.approx((1.0, 1 / 8))
    assert code_usage(torch.arange(8).repeat(3), 8) == pytest.approx((8.0, 1.0))
    assert code_usage(torch.tensor([0, 0, 1, 1]), 8)[0] == pytest.approx(2.0)


def test_identical_inputs_use_one_code_with_perplexity_one():
    vq = VectorQuantizer(8, 3).eval()
    out = vq(torch.ones(4, 3, 10))
    assert out.metrics["perplexity"] == pytest.approx(1.0)
    assert out.metrics["codebook_usage"] == pytest.approx(1 / 8)
    assert out.codes.unique().numel() == 1


def test_ema_update_moves_the_assigned_code_towards_its_inputs_and_leaves_the_others():
    codebook = torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]])
    vq = _quantizer(codebook, [4.0, 4.0, 4.0])
    target = torch.tensor([1.0, -1.0])
    z = target[None, :, None].expand(2, 2, 3) + 0.01 * torch.randn(2, 2, 3)  # (B, D, T): all near code 0
    out = vq(z)
    assert (out.codes == 0).all()
    assert torch.dist(vq.codebook[0], target) < torch.dist(codebook[0], target)
    assert torch.allclose(vq.codebook[1:], codebook[1:], atol=1e-3)  # unused codes stay (up to smoothing)
    assert out.metrics["dead_codes_restarted"] == 0.0


def test_dead_codes_are_restarted_on_encoder_outputs():
    codebook = torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]])
    vq = _quantizer(codebook, [4.0, 4.0, 0.1])  # code 2's EMA usage is below the threshold
    z = torch.tensor([[[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]]])  # (1, D=2, T=3), all nearest to code 0
    out = vq(z)
    assert out.metrics["dead_codes_restarted"] == 1.0
    inputs = z[0].t()  # (3, D)
    assert any(torch.allclose(vq.codebook[2], v) for v in inputs)
    assert float(vq.cluster_size[2]) == pytest.approx(vq.dead_code_threshold)


def test_quantiser_is_frozen_in_eval_mode_and_straight_through_in_training():
    vq = VectorQuantizer(6, 4).eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    z = torch.randn(2, 4, 3, 5, 5, requires_grad=True)  # (B, D, F, H, W): video-shaped latents
    out = vq(z)
    assert out.codes.shape == (2, 3, 5, 5) and out.z_q.shape == z.shape
    assert torch.allclose(out.z_q, vq.lookup(out.codes), atol=1e-6)  # forward value: the code vectors
    assert all(torch.equal(v, before[k]) for k, v in vq.state_dict().items())
    (out.z_q * 3.0).sum().backward()
    assert torch.allclose(z.grad, torch.full_like(z, 3.0))  # backward: identity (van den Oord et al. 2017)


def test_quantiser_training_is_deterministic_under_the_seed():
    def run() -> torch.Tensor:
        torch.manual_seed(0)
        vq = VectorQuantizer(16, 3, dead_code_threshold=1.0).train()
        for _ in range(3):
            vq(torch.randn(4, 3, 8))
        return vq.codebook.clone()

    assert torch.equal(run(), run())


# -- VAE -----------------------------------------------------------------------------------------------------------
def test_kl_warmup_ramps_linearly_counts_training_calls_only_and_resumes():
    model = make_model(VAE_TINY)  # beta 0.01 over 10 steps
    x = make_signal(model, 2)
    model.train()
    betas = [model.loss(x, {}).metrics["beta"] for _ in range(12)]
    expected = [0.01 * min(1.0, (i + 1) / 10) for i in range(12)]
    assert betas == pytest.approx(expected)
    model.eval()
    model.loss(x, {})
    with torch.no_grad():
        model.train().loss(x, {})
    assert int(model.kl_step) == 12  # neither evaluation nor no-grad calls advance the ramp
    resumed = make_model(VAE_TINY)
    resumed.load_state_dict(model.state_dict())  # the step counter is in every checkpoint
    assert resumed.kl_weight() == pytest.approx(model.kl_weight()) and int(resumed.kl_step) == 12


def test_fit_latent_scale_gives_unit_std_latents_and_decode_inverts_it():
    model = make_model(VAE_TINY)
    perturb(model)
    g = torch.Generator().manual_seed(0)
    data = [0.5 * torch.randn(8, 12, 64, generator=g) for _ in range(3)]
    before = model.decode(model.encode(data[0]))
    scale = model.fit_latent_scale((x, {}) for x in data)
    assert scale == pytest.approx(float(model.latent_scale)) and not math.isclose(scale, 1.0, rel_tol=1e-3)
    latents = torch.cat([model.encode(x) for x in data])
    assert float(latents.std()) == pytest.approx(1.0, abs=1e-4)
    assert torch.allclose(model.decode(model.encode(data[0])), before, atol=1e-5)
    assert "latent_scale" in model.state_dict()


def test_a_length_that_is_not_a_multiple_of_the_factor_is_padded_and_cropped():
    with pytest.warns(UserWarning, match="not a multiple of 8"):
        model = build_model(load_config(VAE_TINY, {"signal.length": 60}))
    x = 0.3 * torch.randn(2, 12, 60)
    assert model.latent_shape == (4, 8)  # ceil(60 / 8)
    assert model.encode(x).shape == (2, 4, 8)
    assert model.decode(model.encode(x)).shape == (2, 12, 60)
    assert torch.isfinite(model.loss(x, {}).loss)


def test_conditional_vae_prior_and_decoder_depend_on_the_condition():
    model = make_model(CONFIGS / "vae_leads_tiny.yaml")
    perturb(model)
    cond = make_cond(model, 2)
    other = {**cond, "leads": cond["leads"] + 0.5}
    a = model.sample(cond, 2, generator=torch.Generator().manual_seed(0))
    b = model.sample(other, 2, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(a, b)
    c = model.encode_condition(cond, 2, train=False)
    mean, _ = model.prior(c, 2)
    assert mean.shape == (2, *model.latent_shape) and mean.abs().sum() > 0  # a learned p(z | c), not N(0, I)


def test_a_learned_prior_without_condition_channels_is_refused():
    with pytest.raises(ConfigError, match="prior: learned"):
        build_model(load_config(VAE_TINY, {"process.prior": "learned"}))


# -- latent models -------------------------------------------------------------------------------------------------
@pytest.fixture
def vae_export(tmp_path):
    vae = make_model(VAE_TINY)
    perturb(vae)
    vae.fit_latent_scale([0.3 * torch.randn(8, 12, 64, generator=torch.Generator().manual_seed(4))])
    return vae, save_pretrained(vae, tmp_path / "vae")


def test_latent_flow_over_a_vae_export_trains_samples_and_round_trips(vae_export, tmp_path):
    vae, folder = vae_export
    cfg = load_config(FLOW_LATENT_TINY, {"latent.untrained": None, "latent.pretrained": str(folder)})
    torch.manual_seed(0)
    model = build_model(cfg)
    ae = model.frozen_submodels()["autoencoder"]
    assert ae.cfg.backbone == "vae" and float(ae.latent_scale) == float(vae.latent_scale)
    assert all(torch.equal(t, vae.state_dict()[k]) for k, t in ae.state_dict().items())
    assert model.process_shape == vae.latent_shape and model.sample_shape == (12, 64)

    x, cond = make_signal(model, 4), make_cond(model, 4)
    assert torch.equal(model.to_process(x), vae.encode(x))  # the flow learns the VAE's scaled latents
    frozen_before = {k: v.clone() for k, v in ae.state_dict().items()}
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        out = model.loss(x, cond)
        assert torch.isfinite(out.loss)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    assert all(torch.equal(v, frozen_before[k]) for k, v in ae.state_dict().items())
    assert not ae.training and not any(p.requires_grad for p in ae.parameters())

    samples = model.sample(cond, 4, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (4, 12, 64) and samples.dtype == torch.float32
    export = save_pretrained(model, tmp_path / "flow")
    assert (export / "autoencoder" / "model.safetensors").is_file()
    loaded = load_pretrained(export)
    assert torch.equal(samples, loaded.sample(cond, 4, generator=torch.Generator().manual_seed(1)))


def test_latent_models_refuse_what_they_cannot_use(tmp_path):
    cond_vae = save_pretrained(make_model(CONFIGS / "vae_leads_tiny.yaml"), tmp_path / "cvae")
    with pytest.raises(ConfigError, match="unconditional"):
        build_model(
            load_config(FLOW_LATENT_TINY, {"latent.untrained": None, "latent.pretrained": str(cond_vae)})
        )
    with pytest.raises(ConfigError, match="codes 12×64"):
        build_model(load_config(FLOW_LATENT_TINY, {"signal.length": 128}))
    with pytest.raises(ConfigError, match="vqvae tokenizer"):
        build_model(load_config(CONFIGS / "maskgit_tiny.yaml", {"latent.untrained": str(VAE_TINY)}))
    with pytest.raises(ConfigError, match="exactly one"):
        load_config(FLOW_LATENT_TINY, {"latent.pretrained": str(cond_vae)})


# -- through the one trainer ---------------------------------------------------------------------------------------
class Signals(torch.utils.data.Dataset):
    """``n`` random (12, 64) signals in mV with no conditioning fields."""

    def __init__(self, n: int = 16):
        self.x = 0.3 * torch.randn(n, 12, 64, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i].numpy(), {}


def test_the_trainer_resumes_the_kl_ramp_and_exports_a_latent_model_with_its_autoencoder(tmp_path):
    from synth.training import Trainer
    from synth.training.config import TrainConfig

    def toy_config(out_dir, **overrides) -> TrainConfig:
        base = dict(
            out_dir=str(out_dir),
            lr=1e-3,
            mixed_precision="no",
            log_every=1,
            val_every=0,
            sample_every=0,
            keep_last=1,
            seed=0,
            num_workers=0,
            progress=False,
        )
        return TrainConfig(**{**base, **overrides})

    cfg = toy_config(tmp_path / "vae", steps=4, batch_size=4, ckpt_every=2, warmup_steps=1)
    Trainer(make_model(VAE_TINY), cfg, Signals()).fit(stop_at_step=2)
    resumed = make_model(VAE_TINY)
    trainer = Trainer(resumed, cfg, Signals())
    assert trainer.step == 2 and int(resumed.kl_step) == 2  # the ramp continues where the run stopped
    export = trainer.fit()
    assert int(load_pretrained(export).kl_step) == 4

    flow = make_model(FLOW_LATENT_TINY)
    cfg = toy_config(tmp_path / "flow", steps=2, batch_size=4, ckpt_every=2, warmup_steps=1)
    trainer = Trainer(flow, cfg, Signals())
    assert all(p.requires_grad for group in trainer.optimizer.param_groups for p in group["params"])
    export = trainer.fit()
    assert sorted(p.name for p in export.iterdir()) == ["autoencoder", "config.json", "model.safetensors"]
    assert load_pretrained(export).frozen_submodels()["autoencoder"].cfg.backbone == "vae"
