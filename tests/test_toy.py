"""condgan_lib.toy: the 1-D formulas, the ring data, the mode-collapse measures and the toy training loop."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from condgan_lib import toy

GRID = torch.linspace(-15, 15, 30001, dtype=torch.float64)


# --- the ring ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_modes", [1, 3, 8, 25])
def test_ring_centers_lie_on_the_circle_evenly_spaced(n_modes):
    c = toy.ring_centers(n_modes, radius=2.5)
    assert c.shape == (n_modes, 2)
    assert torch.allclose(c.norm(dim=1), torch.full((n_modes,), 2.5), atol=1e-5)
    if n_modes > 1:
        gaps = torch.cdist(c, c) + 1e9 * torch.eye(n_modes)
        assert torch.allclose(gaps.min(dim=1).values, torch.full((n_modes,), 2 * 2.5 * math.sin(math.pi / n_modes)),
                              atol=1e-4)


def test_ring_samples_use_every_mode_with_the_right_spread():
    x = toy.ring_of_gaussians(20000, n_modes=8, radius=2.0, std=0.05, generator=torch.Generator().manual_seed(0))
    centers = toy.ring_centers(8, 2.0)
    counts = toy.mode_counts(x, centers, std=0.05, n_std=10)
    assert counts.sum() == 20000 and counts.min() > 2200           # ~2500 each
    k, d = toy.nearest_mode(x, centers)
    assert abs(float((d ** 2).mean()) / 2 - 0.05 ** 2) < 0.05 ** 2 * 0.05   # per-axis variance = std^2
    # In 2-D, P(|x - mu| <= 3 std) = 1 - exp(-9/2) = 0.989: real data is almost all "high quality".
    assert abs(toy.high_quality_fraction(x, centers, 0.05) - (1 - math.exp(-4.5))) < 0.005


@pytest.mark.parametrize("call, name", [
    (lambda: toy.ring_centers(0), "n_modes"),
    (lambda: toy.ring_of_gaussians(10, n_modes=-2), "n_modes"),
    (lambda: toy.ring_of_gaussians(10, std=0.0), "std"),
    (lambda: toy.ToyConfig(n_modes=0), "n_modes"),
    (lambda: toy.ToyConfig(loss="wasserstein"), "loss"),
    (lambda: toy.ToyConfig(pack=0), "pack"),
    (lambda: toy.ToyConfig(lr_g=0.0), "lr_g"),
    (lambda: toy.train_toy_gan(steps=0, progress=False), "steps"),
    (lambda: toy.ToyDiscriminator(pack=0), "pack"),
    (lambda: toy.modes_covered(torch.zeros(4, 2), toy.ring_centers(8), 0.05, min_count=0), "min_count"),
    (lambda: toy.GaussianMixture1D(means=(0.0,), stds=(-1.0,)), "stds"),
])
def test_bad_arguments_raise_a_value_error_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# --- the 1-D formulas -------------------------------------------------------------------------------------------

def test_optimal_discriminator_matches_the_closed_form_for_two_unit_gaussians():
    # log N(x; 0, 1) - log N(x; 1, 1) = 1/2 - x, so D*(x) = sigmoid(1/2 - x).
    x = torch.linspace(-4, 4, 81, dtype=torch.float64)
    d = toy.optimal_discriminator(toy.GaussianMixture1D((0.0,), (1.0,)).pdf(x),
                                  toy.GaussianMixture1D((1.0,), (1.0,)).pdf(x))
    assert torch.allclose(d, torch.sigmoid(0.5 - x), atol=1e-12)


def test_js_divergence_is_zero_for_equal_and_log2_for_disjoint_densities():
    p = toy.GaussianMixture1D((0.0,), (1.0,)).pdf(GRID)
    assert abs(toy.js_divergence(p, p, GRID)) < 1e-12
    far = toy.GaussianMixture1D((-8.0,), (0.3,)).pdf(GRID), toy.GaussianMixture1D((8.0,), (0.3,)).pdf(GRID)
    assert abs(toy.js_divergence(*far, GRID) - math.log(2)) < 1e-6


@settings(max_examples=30, deadline=None)
@given(mu=st.floats(-3, 3), sd=st.floats(0.3, 2.0), w=st.floats(0.05, 0.95))
def test_value_at_the_optimal_discriminator_is_minus_log4_plus_twice_the_jsd(mu, sd, w):
    p_data = toy.GaussianMixture1D((-1.0, 1.5), (0.5, 0.6), (w, 1 - w)).pdf(GRID)
    p_g = toy.GaussianMixture1D((mu,), (sd,)).pdf(GRID)
    c = toy.value_function(toy.optimal_discriminator(p_data, p_g), p_data, p_g, GRID)
    assert abs(c - (-math.log(4) + 2 * toy.js_divergence(p_data, p_g, GRID))) < 1e-6
    # and no other discriminator does better
    assert toy.value_function(torch.full_like(GRID, 0.5), p_data, p_g, GRID) <= c + 1e-9


def test_mixture_samples_follow_the_mixture():
    m = toy.GaussianMixture1D((-2.0, 3.0), (0.5, 1.0), (0.25, 0.75))
    x = m.sample(40000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (40000, 1)
    assert abs(float(x.mean()) - (0.25 * -2 + 0.75 * 3)) < 0.03
    assert abs(float(torch.trapezoid(m.pdf(GRID), GRID)) - 1) < 1e-6


def test_a_trained_1d_discriminator_approaches_the_optimal_one():
    data, fake = toy.GaussianMixture1D((-1.0,), (0.7,)), toy.GaussianMixture1D((1.0,), (0.7,))
    d = toy.train_discriminator_1d(data, fake, steps=400, progress=False)
    x = torch.linspace(-1.5, 1.5, 61)
    err = (d.prob_real(x[:, None]).double() - toy.optimal_discriminator(data.pdf(x), fake.pdf(x))).abs().max()
    assert err < 0.1


# --- measuring mode collapse ------------------------------------------------------------------------------------

def test_modes_covered_and_high_quality_fraction_count_synthetic_samples():
    centers = toy.ring_centers(8, 2.0)
    near = lambda i, k: centers[i] + 0.05 * torch.tensor([[1.0, 0.0]]).repeat(k, 1)   # 1 std away
    far = torch.zeros(35, 2)                                                          # the ring's centre
    x = torch.cat([near(0, 30), near(3, 25), near(5, 10), far])
    assert toy.mode_counts(x, centers, 0.05).tolist() == [30, 0, 0, 25, 0, 10, 0, 0]
    assert toy.modes_covered(x, centers, 0.05, min_count=20) == 2
    assert toy.modes_covered(x, centers, 0.05, min_count=10) == 3
    assert toy.high_quality_fraction(x, centers, 0.05) == pytest.approx(65 / 100)
    assert toy.high_quality_fraction(x, centers, 0.05, n_std=0.5) == 0.0


# --- models and training ----------------------------------------------------------------------------------------

def test_packed_discriminator_judges_groups_of_points():
    d = toy.ToyDiscriminator(pack=4)
    assert d(torch.randn(12, 2)).shape == (3,)
    assert d.prob_real(torch.randn(5, 2)).shape == (5,)
    with pytest.raises(ValueError, match="pack"):
        d(torch.randn(10, 2))


def test_training_is_deterministic_for_a_seed_and_leaves_global_state_alone():
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = toy.train_toy_gan(steps=40, snapshot_every=20, progress=False, seed=5)
    assert torch.equal(torch.rand(3), expected_next)            # the caller's RNG stream is untouched
    assert torch.get_num_threads() == threads
    b = toy.train_toy_gan(steps=40, snapshot_every=20, progress=False, seed=5)
    c = toy.train_toy_gan(steps=40, snapshot_every=20, progress=False, seed=6)
    assert torch.equal(a.generator.sample(64), b.generator.sample(64))
    assert a.history == b.history
    assert not torch.equal(a.generator.sample(64), c.generator.sample(64))
    assert [s.step for s in a.snapshots] == [0, 20, 40]
    land = a.snapshots[-1].landscape
    assert land.shape == (48, 48) and float(land.min()) > 0 and float(land.max()) < 1


def test_saturating_loss_gives_vanishing_gradients_against_a_confident_discriminator():
    run = toy.train_toy_gan(steps=200, lr_g=1e-9, progress=False)   # G frozen in effect, D learns to reject it
    assert float(run.discriminator.prob_real(run.generator.sample(512)).mean()) < 0.05
    sat = toy.generator_grad_norm(run.generator, run.discriminator, "saturating")
    ns = toy.generator_grad_norm(run.generator, run.discriminator, "bce")
    assert ns > 20 * sat


def test_animation_frames_draw_every_snapshot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = toy.train_toy_gan(steps=20, snapshot_every=10, progress=False)
    frames = toy.animation_frames(run)
    assert len(frames) == 3
    fig, ax = plt.subplots()
    frames[-1](ax)
    assert ax.get_title().startswith("step 20")
    plt.close(fig)
