"""unCLIP in miniature: the diffusion prior, the embedding-conditioned GAN decoder, the pipeline and the trainers."""
import math

import pytest
import torch
import torch.nn.functional as F

from condgan_lib import clip, configs, diffusion, hub, shapes, text, unclip
from condgan_lib.runs import run_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    """An untrained CLIP, prior and decoder, small enough for unit tests."""
    torch.manual_seed(0)
    model = clip.CLIPModel(len(text.VOCAB), embed_dim=16, ch=4, text_dim=16).eval()
    prior = unclip.DiffusionPrior(embed_dim=16, hidden=32, depth=2, timesteps=10).eval()
    decoder = unclip.EmbeddingConditionedGenerator(z_dim=8, embed_dim=16, ch=4).eval()
    return unclip.UnCLIP(model, prior, decoder)


def test_cosine_schedule_falls_from_one_to_zero():
    a = diffusion.cosine_schedule(100)
    assert a.shape == (100,)
    assert (a[1:] < a[:-1]).all()
    assert 0.99 < a[0] <= 1 and 0 <= a[-1] < 1e-3


def test_add_noise_has_the_variance_of_q_xt_given_x0():
    prior = unclip.DiffusionPrior(embed_dim=16, timesteps=10)
    t = torch.full((20000,), 4)
    x0 = torch.full((20000, 16), 2.0)
    xt = prior.add_noise(x0, t, torch.randn(20000, 16, generator=torch.Generator().manual_seed(0)))
    a = prior.alpha_bar[4].item()
    assert xt.mean().item() == pytest.approx(2 * math.sqrt(a), abs=0.01)
    assert xt.var().item() == pytest.approx(1 - a, rel=0.03)


def test_prior_samples_are_unit_vectors_reproducible_by_seed_and_keep_the_best_candidate(tiny):
    z_t = F.normalize(torch.randn(6, 16, generator=torch.Generator().manual_seed(1)), dim=1)
    one = tiny.prior.sample(z_t, seed=3)
    assert one.shape == (6, 16) and torch.allclose(one.norm(dim=1), torch.ones(6), atol=1e-5)
    assert torch.equal(one, tiny.prior.sample(z_t, seed=3))
    best = tiny.prior.sample(z_t, seed=3, candidates=4)
    assert ((best * z_t).sum(1) >= (one * z_t).sum(1) - 1e-6).float().mean() >= 0.5


def test_slerp_moves_along_the_great_circle():
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    assert torch.allclose(unclip.slerp(a, b, 0.0), a, atol=1e-6)
    assert torch.allclose(unclip.slerp(a, b, 1.0), b, atol=1e-6)
    mid = unclip.slerp(a, b, 1 / 3)
    assert mid.norm().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.arccos(mid @ a).item() == pytest.approx(math.pi / 6, abs=1e-5)


def test_lafite_perturbation_keeps_unit_norm_and_moves_by_the_requested_amount():
    e = F.normalize(torch.randn(2000, 64, generator=torch.Generator().manual_seed(0)), dim=1)
    p = unclip.perturb_embeddings(e, 0.5, torch.Generator().manual_seed(1))
    assert torch.allclose(p.norm(dim=1), torch.ones(2000), atol=1e-5)
    # a random direction in 64-d is nearly orthogonal to e, so cos(e, p) ~ 1 / sqrt(1 + 0.5^2)
    assert (p * e).sum(1).mean().item() == pytest.approx(1 / math.sqrt(1.25), abs=0.02)
    assert torch.equal(unclip.perturb_embeddings(e, 0.0), e)


def test_decoder_generates_images_in_range_reproducibly_and_refuses_wrong_embeddings(tiny):
    emb = F.normalize(torch.randn(3, 16), dim=1)
    images = tiny.decoder.generate(emb, seed=0)
    assert images.shape == (3, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
    assert torch.equal(images, tiny.decoder.generate(emb, seed=0))
    with pytest.raises(ValueError, match=r"\[N, 16\]"):
        tiny.decoder.generate(torch.randn(3, 15), seed=0)


def test_projection_discriminator_is_psi_plus_the_inner_product():
    torch.manual_seed(0)
    D = unclip.EmbeddingProjectionDiscriminator(embed_dim=16, ch=4, features=32).eval()
    x, e = torch.rand(5, 3, 32, 32) * 2 - 1, F.normalize(torch.randn(5, 16), dim=1)
    with torch.no_grad():
        phi = D.trunk(x)
        by_hand = D.head(phi).squeeze(1) + (D.embed(e) * phi).sum(1)
        assert torch.allclose(by_hand, D(x, e), atol=1e-5)


def test_pipeline_generate_variations_and_text_diff_shapes(tiny):
    batch = shapes.sample_batch(2, seed=0)
    assert tiny.generate(batch.captions, seed=0).shape == (2, 3, 32, 32)
    assert tiny.variations(batch.images, n=3, seed=0).shape == (6, 3, 32, 32)
    edits = tiny.text_diff(batch.images[0], "a big red circle in the top left", "a big green circle in the top left",
                           thetas=[0.0, 0.25, 0.5], seed=1)
    assert edits.shape == (3, 3, 32, 32)
    # theta = 0 is the image's own embedding, decoded with the same noise
    own = tiny.decoder.generate(tiny.clip.encode_images(batch.images[:1]), seed=1)
    assert torch.allclose(edits[0], own[0], atol=1e-5)


def test_clip_score_of_matching_pairs_beats_shuffled_pairs_with_the_shipped_clip():
    if "shapes-clip" not in hub.list_pretrained():
        pytest.skip("shapes-clip is not shipped")
    model = hub.load_pretrained("shapes-clip")
    batch = shapes.sample_batch(64, seed=5, split="test")
    shuffled = batch.captions[1:] + batch.captions[:1]
    assert unclip.clip_score(model, batch.images, batch.captions) > unclip.clip_score(model, batch.images, shuffled) + 0.1


@pytest.mark.skipif("shapes-clip" not in hub.list_pretrained(), reason="shapes-clip is not shipped")
def test_decoder_training_resumes_where_it_stopped(tmp_path):
    small = dict(train_size=64, batch_size=8, ch=4, z_dim=8, log_every=2, ckpt_every=2)
    straight = run_config("shapes-decoder", device="cpu", out=tmp_path / "a", progress=False, evaluate=False,
                          steps=4, **small)
    run_config("shapes-decoder", device="cpu", out=tmp_path / "b", progress=False, evaluate=False, steps=2, **small)
    resumed = run_config("shapes-decoder", device="cpu", out=tmp_path / "b", progress=False, evaluate=False,
                         resume=True, steps=4, **small)
    assert resumed.history == straight.history
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k


@pytest.mark.skipif("shapes-clip" not in hub.list_pretrained(), reason="shapes-clip is not shipped")
def test_prior_trainer_lowers_its_loss(tmp_path):
    result = run_config("shapes-prior", device="cpu", out=tmp_path, progress=False, evaluate=False, steps=60,
                        train_size=256, batch_size=64, hidden=64, depth=2, log_every=10)
    history = result.history
    assert history[-1]["loss"] < history[0]["loss"]


def test_configs_name_their_clip_and_refuse_bad_values():
    assert configs.get_config("shapes-decoder").clip == configs.get_config("shapes-prior").clip == "shapes-clip"
    with pytest.raises(ValueError, match="embed_noise"):
        configs.get_config("shapes-decoder", embed_noise=-1.0)
    with pytest.raises(ValueError, match="steps"):
        configs.get_config("shapes-prior", steps=0)


def test_tiny_diffusion_decoder_samples_images_reproducibly_and_guidance_one_is_plain_sampling():
    torch.manual_seed(0)
    model = diffusion.TinyDiffusionDecoder(embed_dim=16, ch=4, timesteps=10).eval()
    emb = F.normalize(torch.randn(3, 16, generator=torch.Generator().manual_seed(2)), dim=1)
    images = model.generate(emb, seed=1, steps=5)
    assert images.shape == (3, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
    assert torch.equal(images, model.generate(emb, seed=1, steps=5, guidance=1.0))
    assert not torch.equal(images, model.generate(emb, seed=1, steps=5, guidance=3.0))
    with pytest.raises(ValueError, match=r"\[N, 16\]"):
        model.generate(torch.randn(3, 8), seed=0)


def test_tiny_diffusion_decoder_loss_is_the_noise_prediction_error_and_drops_embeddings():
    torch.manual_seed(0)
    model = diffusion.TinyDiffusionDecoder(embed_dim=16, ch=4, timesteps=10)
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    emb = F.normalize(torch.randn(8, 16), dim=1)
    loss = model.loss(x, emb, generator=torch.Generator().manual_seed(0))
    assert loss.item() > 0 and torch.isfinite(loss)
    # with every embedding dropped the loss cannot depend on the embeddings
    a = model.loss(x, emb, drop=1.0 - 1e-9, generator=torch.Generator().manual_seed(0))
    b = model.loss(x, -emb, drop=1.0 - 1e-9, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(a, b)
