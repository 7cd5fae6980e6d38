"""The diffusion chapter's module: the forward process and the schedules match their formulas, one sampler step
inverts the process when it is given the true noise, sampling is reproducible and refuses bad input with one clear
error each, the family trains on the engine, and the unCLIP chapter's decoder samples exactly as before."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from condgan_lib import artifacts, configs, diffusion, hub
from condgan_lib.runs import run_config

pytestmark = pytest.mark.usefixtures("one_thread")

T = 1000


@pytest.fixture(scope="module")
def tiny():
    """An untrained class-conditional U-Net, small enough for unit tests."""
    torch.manual_seed(0)
    model = diffusion.ClassConditionalUNet(ch=4, timesteps=20).eval()
    for p in model.parameters():                # untrained blocks start as the identity: give them something to do
        torch.nn.init.normal_(p, std=0.1)
    return model


# ------------------------------------------------------------------------------------------- the formulas

@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("t", [0, 100, 500, 900])
def test_q_sample_has_the_mean_and_variance_of_q_xt_given_x0(schedule, t):
    alpha_bar = diffusion.SCHEDULES[schedule](T)
    x0 = torch.full((40000, 1), 0.7)
    noise = torch.randn(40000, 1, generator=torch.Generator().manual_seed(t))
    xt = diffusion.q_sample(x0, torch.full((40000,), t), noise, alpha_bar)
    a = alpha_bar[t].item()
    assert xt.mean().item() == pytest.approx(0.7 * math.sqrt(a), abs=0.015)
    assert xt.var().item() == pytest.approx(1 - a, abs=0.015)


def test_q_sample_takes_one_step_per_image():
    alpha_bar = diffusion.cosine_schedule(T)
    x0, noise = torch.ones(3, 1, 2, 2), torch.zeros(3, 1, 2, 2)
    xt = diffusion.q_sample(x0, torch.tensor([0, 500, 999]), noise, alpha_bar)
    assert torch.allclose(xt[:, 0, 0, 0], alpha_bar[[0, 500, 999]].sqrt())


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_schedules_fall_from_one_to_zero_and_the_snr_falls_with_them(schedule):
    alpha_bar = diffusion.SCHEDULES[schedule](T)
    snr = diffusion.signal_to_noise(alpha_bar)
    assert alpha_bar.shape == (T,) and (alpha_bar[1:] < alpha_bar[:-1]).all() and (snr[1:] < snr[:-1]).all()
    assert 0.999 < alpha_bar[0] <= 1 and 0 <= alpha_bar[-1] < 1e-4


def test_the_linear_schedule_is_ddpms():
    alpha_bar = diffusion.linear_schedule(T)
    betas = 1 - alpha_bar / torch.cat([torch.ones(1), alpha_bar[:-1]])
    assert betas[0].item() == pytest.approx(1e-4, rel=1e-3) and betas[-1].item() == pytest.approx(0.02, rel=1e-3)
    assert alpha_bar[-1].item() == pytest.approx(4.04e-5, rel=0.02)          # Ho et al.'s L_T is near zero
    assert torch.allclose(diffusion.linear_schedule(100), alpha_bar[9::10], atol=0.02)   # scaled to any T


def test_ddim_with_the_true_noise_recovers_x0_and_lands_on_q_x_prev():
    alpha_bar = diffusion.cosine_schedule(T)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(64, 1, 28, 28, generator=gen) * 2 - 1
    noise = torch.randn(x0.shape, generator=gen)
    for t, prev in [(900, 700), (500, 250), (100, 0)]:      # at t = 999 float32 loses x0
        xt = diffusion.q_sample(x0, torch.full((64,), t), noise, alpha_bar)
        a, a_prev = alpha_bar[t], alpha_bar[prev]
        assert torch.allclose(diffusion.predict_x0(xt, noise, a).clamp(-1, 1), x0, atol=1e-3)
        assert torch.allclose(diffusion.ddim_step(xt, noise, a, torch.tensor(1.0)), x0, atol=1e-3)
        expected = diffusion.q_sample(x0, torch.full((64,), prev), noise, alpha_bar)
        assert torch.allclose(diffusion.ddim_step(xt, noise, a, a_prev), expected, atol=1e-4)


def test_ddpm_step_with_the_true_noise_draws_from_q_x_prev_given_x0():
    alpha_bar = diffusion.cosine_schedule(T)
    gen = torch.Generator().manual_seed(1)
    n, t, prev = 40000, 600, 550
    x0 = torch.full((n, 1), -0.4)
    eps = torch.randn(n, 1, generator=gen)
    xt = diffusion.q_sample(x0, torch.full((n,), t), eps, alpha_bar)
    x_prev = diffusion.ddpm_step(xt, eps, alpha_bar[t], alpha_bar[prev], torch.randn(n, 1, generator=gen))
    a = alpha_bar[prev].item()
    assert x_prev.mean().item() == pytest.approx(-0.4 * math.sqrt(a), abs=0.015)
    assert x_prev.var().item() == pytest.approx(1 - a, abs=0.02)
    last = diffusion.ddpm_step(xt, eps, alpha_bar[t], torch.tensor(1.0), torch.randn(n, 1, generator=gen))
    assert torch.allclose(last, x0, atol=1e-4)                    # the last step adds no noise


def test_samplers_start_where_some_signal_is_left_and_visit_distinct_steps_down_to_zero():
    alpha_bar = diffusion.cosine_schedule(T)
    first = diffusion.first_sampling_step(alpha_bar)
    assert alpha_bar[first].sqrt() >= diffusion.MIN_SIGNAL > alpha_bar[first + 1].sqrt() and first == 960
    for steps in (1, 2, 10, 25, first + 1):
        ts = diffusion.sampling_timesteps(alpha_bar, steps)
        assert len(ts) == steps and ts[0] == first and len(set(ts)) == steps and ts == sorted(ts, reverse=True)
        assert steps == 1 or ts[-1] == 0


# ------------------------------------------------------------------------------------------ the model

def test_generate_gives_images_in_range_and_the_same_for_a_seed(tiny):
    labels = torch.tensor([0, 3, 9, 3])
    for sampler in diffusion.SAMPLERS:
        a = tiny.generate(labels, seed=1, steps=4, sampler=sampler)
        assert a.shape == (4, 1, 28, 28) and a.min() >= 0 and a.max() <= 1
        assert torch.equal(a, tiny.generate(labels, seed=1, steps=4, sampler=sampler))
        assert not torch.equal(a, tiny.generate(labels, seed=2, steps=4, sampler=sampler))
    chunked = tiny.generate(labels, seed=1, steps=4, chunk=3)          # the network's batch size does not matter
    assert torch.allclose(chunked, tiny.generate(labels, seed=1, steps=4), atol=1e-5)


def test_guidance_zero_ignores_the_label_and_guidance_one_is_the_conditional_model(tiny):
    threes, sevens = torch.full((4,), 3), torch.full((4,), 7)
    assert torch.equal(tiny.generate(threes, seed=0, steps=3, guidance=0), tiny.generate(sevens, seed=0, steps=3,
                                                                                         guidance=0))
    assert not torch.equal(tiny.generate(threes, seed=0, steps=3, guidance=1), tiny.generate(sevens, seed=0, steps=3,
                                                                                             guidance=1))
    x, t = torch.randn(4, 1, 28, 28), 7
    with torch.no_grad():
        eps_y = tiny(x, torch.full((4,), t), threes)
        eps_none = tiny(x, torch.full((4,), t), torch.full((4,), 10))
        assert torch.allclose(tiny.guided_noise(x, t, threes, 1.0), eps_y)
        assert torch.allclose(tiny.guided_noise(x, t, threes, 3.0), eps_none + 3 * (eps_y - eps_none), atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(labels=torch.tensor([3, 10, -1])), r"labels must be in 0\.\.9; got \[-1, 10\]"),
    (dict(labels=torch.tensor([1.0, 2.0])), "1-D integer tensor"),
    (dict(labels=5), "pass a LongTensor of labels, not a count"),
    (dict(steps=0), "steps must be an integer from 1 to 19"),
    (dict(steps=20), "steps must be an integer from 1 to 19"),
    (dict(steps=2.5), "steps must be an integer"),
    (dict(guidance=-0.5), "guidance must be a number >= 0"),
    (dict(guidance=float("nan")), "guidance must be a number >= 0"),
    (dict(sampler="euler"), "sampler must be one of"),
])
def test_bad_input_gets_one_clear_error(tiny, kwargs, message):
    args = {"labels": torch.tensor([1, 2]), "seed": 0, "steps": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        tiny.generate(args.pop("labels"), **args)


def test_no_labels_give_no_images(tiny):
    assert tiny.generate(torch.tensor([], dtype=torch.long), seed=0).shape == (0, 1, 28, 28)


def test_the_loss_drops_labels_to_none_at_the_requested_rate(tiny):
    seen = []
    forward = tiny.forward
    tiny.forward = lambda x, t, labels: (seen.append(labels), forward(x, t, labels))[1]
    try:
        diffusion.diffusion_loss(tiny, torch.zeros(4000, 1, 28, 28), torch.full((4000,), 2), drop=0.25,
                                 generator=torch.Generator().manual_seed(0))
    finally:
        del tiny.forward
    dropped = (seen[0] == 10).float().mean().item()
    assert dropped == pytest.approx(0.25, abs=0.03) and set(seen[0].tolist()) == {2, 10}


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="label_drop and ema_decay"):
        configs.get_config("mnist-diffusion", label_drop=1.0)
    with pytest.raises(ValueError, match="schedule must be"):
        configs.get_config("mnist-diffusion", schedule="quadratic")
    with pytest.raises(ValueError, match="eval_steps must be positive"):
        configs.get_config("mnist-diffusion", eval_steps=0)


def test_the_family_trains_on_the_engine_and_logs_condition_accuracy(tmp_path):
    if "mnist-classifier" not in hub.list_pretrained():
        pytest.skip("needs the shipped MNIST judge")
    run = run_config("mnist-diffusion", device="cpu", out=tmp_path, progress=False, evaluate=False, steps=6,
                     ch=4, batch_size=8, timesteps=10, eval_every=3, eval_samples=10, eval_steps=2, log_every=3,
                     ckpt_every=3)
    evals = [h for h in run.history if "condition_accuracy" in h]
    assert [h["step"] for h in evals] == [3, 6] and all(0 <= h["condition_accuracy"] <= 1 for h in evals)
    assert all(h["wall_time_s"] > 0 for h in evals)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_0000003.pt", "step_0000006.pt"]
    assert isinstance(run.model, diffusion.ClassConditionalUNet) and (tmp_path / "samples.png").exists()
    assert run.model.generate(torch.arange(3), seed=0, steps=2).shape == (3, 1, 28, 28)


# ---------------------------------------------------------------------------- the unCLIP chapter's decoder

def reference_decoder_sampling(decoder, embeddings, seed, steps, guidance):
    """``TinyDiffusionDecoder.generate`` as it was written before ``ddim_step`` was shared."""
    emb = F.normalize(embeddings.float(), dim=1)
    x = torch.randn(len(emb), 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    ts = torch.linspace(decoder.timesteps - 1, 0, steps).round().long().tolist()
    with torch.no_grad():
        for i, t in enumerate(ts):
            tt = torch.full((len(x),), t, dtype=torch.long)
            eps = decoder(x, tt, emb)
            if guidance != 1.0:
                eps_u = decoder(x, tt, torch.zeros_like(emb))
                eps = eps_u + guidance * (eps - eps_u)
            a = decoder.alpha_bar[t]
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
            a_next = decoder.alpha_bar[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
            x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    return (x.clamp(-1, 1) + 1) / 2


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_the_tiny_diffusion_decoder_samples_bit_for_bit_as_before(guidance):
    if "shapes-diffusion-decoder" in hub.list_pretrained():
        decoder = hub.load_pretrained("shapes-diffusion-decoder")     # its state_dict keys load strictly
    else:
        torch.manual_seed(0)
        decoder = diffusion.TinyDiffusionDecoder(embed_dim=16, ch=4, timesteps=20).eval()
    emb = torch.randn(6, decoder.embed_dim, generator=torch.Generator().manual_seed(2))
    ours = decoder.generate(emb, seed=5, steps=8, guidance=guidance)
    assert torch.equal(ours, reference_decoder_sampling(decoder, emb, 5, 8, guidance))


def test_the_tiny_diffusion_decoder_keeps_its_state_dict_keys():
    keys = set(diffusion.TinyDiffusionDecoder(embed_dim=16, ch=4, timesteps=20).state_dict())
    assert keys == {f"{m}.{p}" for m in ("cond.0", "cond.2", "conv_in", "down1", "down2", "to_map", "up1", "merge1",
                                         "up2", "merge2", "conv_out") for p in ("weight", "bias")}


# ------------------------------------------------------------------------------------------ the shipped model

@pytest.fixture(scope="module")
def shipped():
    if "mnist-diffusion" not in hub.list_pretrained():
        pytest.skip("mnist-diffusion is not shipped")
    return hub.load_pretrained("mnist-diffusion"), hub.read_manifest()["mnist-diffusion"]


def test_the_shipped_model_obeys_its_label_as_often_as_the_target_asks(shipped):
    _, entry = shipped
    assert entry["metrics"]["n"] == 2000 and entry["metrics"]["condition_accuracy"] >= 0.99
    assert entry["command"].startswith("python -m condgan_lib.train --config mnist-diffusion")


def test_the_shipped_model_is_as_close_to_the_data_as_the_target_asks(shipped):
    _, entry = shipped
    assert entry["metrics"]["fid"] <= 1.5 * hub.read_manifest()["mnist-projection"]["metrics"]["fid"]


def test_the_shipped_model_samples_at_its_defaults_reproducibly(shipped):
    model, _ = shipped
    labels = torch.tensor([0, 7, 7])
    a = model.generate(labels, seed=3)
    assert a.shape == (3, 1, 28, 28) and torch.equal(a, model.generate(labels, seed=3, steps=diffusion.DEFAULT_STEPS,
                                                                       guidance=diffusion.DEFAULT_GUIDANCE))


def test_the_stored_sweeps_were_measured_on_the_shipped_models():
    """A retrained diffusion model or GAN leaves the chapter's sweeps stale: this names what changed (a retrained
    judge: tests/test_metrics.py)."""
    sweeps = json.loads(artifacts.path("diffusion/sweeps.json").read_text())
    manifest = hub.read_manifest()
    shipped = {"model_sha256": "mnist-diffusion", "gan_sha256": "mnist-projection"}
    stale = [name for key, name in shipped.items() if sweeps[key] != manifest[name]["sha256"]]
    assert not stale, f"sweeps measured with another {stale}: run scripts/diffusion_sweeps.py again"
