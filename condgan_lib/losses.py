"""Chapter "The GAN game" (and every GAN after it): GAN losses as pure functions of discriminator logits.

``d_real`` and ``d_fake`` are the discriminator's raw outputs (logits) on real and generated batches.

- Minimax (Goodfellow et al., 2014): D maximises ``log D(x) + log(1 - D(G(z)))``; the *saturating* generator loss
  minimises ``log(1 - D(G(z)))``, the *non-saturating* one maximises ``log D(G(z))``.
- Hinge (Lim & Ye, 2017; Miyato et al., 2018): D minimises ``relu(1 - d_real) + relu(1 + d_fake)``, G minimises ``-d_fake``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss of the original GAN: ``-log sigmoid(d_real) - log(1 - sigmoid(d_fake))``, averaged."""
    return (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
            + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))


def nonsaturating_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``-log sigmoid(d_fake)``: strong gradients when D rejects the fakes."""
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def saturating_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Saturating (minimax) generator loss ``log(1 - sigmoid(d_fake))``: its gradient vanishes when D wins."""
    return -F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))


def hinge_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss: ``relu(1 - d_real) + relu(1 + d_fake)``, averaged."""
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()


def hinge_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss: ``-d_fake``, averaged."""
    return -d_fake.mean()


D_LOSSES = {"bce": bce_d_loss, "hinge": hinge_d_loss}
G_LOSSES = {"bce": nonsaturating_g_loss, "hinge": hinge_g_loss, "saturating": saturating_g_loss}
