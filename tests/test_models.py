"""condgan_lib.models and losses: the generator interface other chapters rely on, and the loss formulas."""
import math

import pytest
import torch

from condgan_lib import losses
from condgan_lib.models import (ACGANDiscriminator, ConcatDiscriminator, DCGANDiscriminator, Generator,
                                MLPDiscriminator, MLPGenerator, ProjectionDiscriminator,
                                SNGANDiscriminator, latent_code, with_code)


@pytest.fixture
def conditional():
    torch.manual_seed(0)
    return Generator(z_dim=16, n_classes=10, ch=8).eval()


def test_conditional_generate_shape_range_and_seed(conditional):
    labels = torch.tensor([0, 1, 2, 9])
    a = conditional.generate(labels, seed=3)
    assert a.shape == (4, 1, 28, 28) and a.dtype == torch.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert torch.equal(a, conditional.generate(labels, seed=3))
    assert not torch.equal(a, conditional.generate(labels, seed=4))


@pytest.mark.parametrize("bad", [[-1, 0], [3, 10], [12]])
def test_labels_outside_0_to_9_raise_value_error_naming_them(conditional, bad):
    with pytest.raises(ValueError, match=r"0\.\.9.*" + str(max(bad) if max(bad) > 9 else min(bad))):
        conditional.generate(torch.tensor(bad))


def test_conditional_generator_refuses_a_count_and_float_labels(conditional):
    with pytest.raises(ValueError, match="LongTensor"):
        conditional.generate(5)
    with pytest.raises(ValueError, match="integer"):
        conditional.generate(torch.tensor([1.0, 2.0]))


def test_unconditional_generate_takes_a_count():
    for G in (Generator(z_dim=8, ch=4), MLPGenerator(z_dim=8, hidden=16)):
        x = G.eval().generate(3, seed=0)
        assert x.shape == (3, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
        with pytest.raises(ValueError, match="positive count"):
            G.generate(0)


def test_truncation_bounds_the_latents(conditional):
    from condgan_lib.layers import sample_latents
    z = sample_latents(500, 16, seed=0, device="cpu", truncation=0.5)
    assert z.abs().max() <= 0.5
    with pytest.raises(ValueError, match="truncation"):
        conditional.generate(torch.tensor([1]), truncation=0)


def test_label_changes_the_conditional_output(conditional):
    a = conditional.generate(torch.tensor([1]), seed=0)
    with torch.no_grad():
        conditional.norm1.gain.weight[7] += 1.0  # make class 7 differ from class 1
    assert not torch.allclose(a, conditional.generate(torch.tensor([7]), seed=0))


def test_discriminators_return_one_logit_per_image():
    x, y = torch.randn(5, 1, 28, 28), torch.randint(0, 10, (5,))
    for D in (MLPDiscriminator(hidden=16), DCGANDiscriminator(ch=4), SNGANDiscriminator(ch=4), ConcatDiscriminator(ch=4),
              ProjectionDiscriminator(ch=4)):
        assert D(x, y).shape == (5,)
    logit, classes = ACGANDiscriminator(ch=4)(x)
    assert logit.shape == (5,) and classes.shape == (5, 10)


def test_losses_match_their_formulas():
    d_real, d_fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sig = torch.sigmoid
    expected_d = -(torch.log(sig(d_real)).mean() + torch.log(1 - sig(d_fake)).mean())
    assert math.isclose(losses.bce_d_loss(d_real, d_fake).item(), expected_d.item(), rel_tol=1e-6)
    assert math.isclose(losses.nonsaturating_g_loss(d_fake).item(), -torch.log(sig(d_fake)).mean().item(), rel_tol=1e-6)
    assert math.isclose(losses.saturating_g_loss(d_fake).item(), torch.log(1 - sig(d_fake)).mean().item(), rel_tol=1e-6)
    assert math.isclose(losses.hinge_d_loss(d_real, d_fake).item(), (0.0 + 2.0) / 2 + (1.5 + 0.0) / 2, rel_tol=1e-6)
    assert losses.hinge_g_loss(d_fake).item() == pytest.approx(1.25)


def test_saturating_loss_has_vanishing_gradient_when_d_rejects_fakes():
    logit = torch.tensor([-8.0], requires_grad=True)  # D is sure the fake is fake
    g_sat, = torch.autograd.grad(losses.saturating_g_loss(logit), logit)
    logit2 = torch.tensor([-8.0], requires_grad=True)
    g_ns, = torch.autograd.grad(losses.nonsaturating_g_loss(logit2), logit2)
    assert abs(g_sat.item()) < 1e-3 < abs(g_ns.item())


def test_the_sngan_discriminator_is_the_projection_discriminator_without_its_class_term():
    torch.manual_seed(0)
    projection, sngan = ProjectionDiscriminator(ch=4, sn_embedding=False), SNGANDiscriminator(ch=4)
    missing, unexpected = sngan.load_state_dict(projection.state_dict(), strict=False)
    assert missing == [] and unexpected == ["embed.weight"]
    x, y = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    projection.eval(), sngan.eval()
    with torch.no_grad():
        projection.embed.weight.zero_()
        assert torch.allclose(projection(x, y), sngan(x), atol=1e-6)
        projection.embed.weight.normal_()
        assert not torch.allclose(projection(x, y), sngan(x), atol=1e-3)


def test_the_latent_code_is_uniform_and_the_coded_generator_stays_unconditional():
    z = torch.randn(20000, 16, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(latent_code(z, 10), minlength=10).float()
    assert counts.min() > 0.9 * 2000 and counts.max() < 1.1 * 2000  # uniform over the ten codes
    torch.manual_seed(0)
    G = Generator(z_dim=16, ch=8, n_codes=10).eval()
    assert G.n_classes == 0 and G.generate(3, seed=1).shape == (3, 1, 28, 28)  # a count, as for any unconditional G
    with pytest.raises(ValueError, match="unconditional"):
        G.generate(torch.tensor([1, 2]))
    # the code, and only the code, picks the batch norm's row: a latent moved within its region keeps it
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(2))
    z[:, :10] = -1.0
    z[0, 3] = z[1, 7] = 1.0
    with torch.no_grad():
        G.norm1.gain.weight[7] += 1.0
        same_code = G(torch.stack([z[0], z[0]]))
        assert torch.allclose(same_code[0], same_code[1])
        z_other = z[0].clone()
        z_other[3], z_other[7] = -1.0, 1.0  # the same values, the code moved from 3 to 7
        assert not torch.allclose(G(z[:1]), G(z_other[None]))
    moved = with_code(z, 5, 10)
    assert latent_code(moved, 10).tolist() == [5, 5]
    assert torch.equal(moved.sort(1).values, z.sort(1).values)  # the same values, permuted
    with pytest.raises(ValueError, match="either class labels"):
        Generator(z_dim=16, n_classes=10, n_codes=10)
    with pytest.raises(ValueError, match="cannot exceed z_dim"):
        Generator(z_dim=8, n_codes=10)


def test_the_infogan_discriminator_also_returns_code_logits():
    x = torch.randn(5, 1, 28, 28)
    logit, codes = SNGANDiscriminator(ch=4, n_codes=10)(x)
    assert logit.shape == (5,) and codes.shape == (5, 10)
