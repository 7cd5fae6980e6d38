"""Building blocks shared by several chapters' networks: seeded latents, FiLM batch norm, the spectrally
normalised 32x32 image trunk.

- ``sample_latents``: the noise every generator draws, seeded, with the truncation trick (chapter
  "Class-conditional GANs").
- ``FiLMBatchNorm2d``: batch norm whose scale and shift are linear functions of a continuous condition (a sentence
  embedding in "Text to image", a CLIP image embedding in "CLIP and DALL-E 2's real design"): FiLM (Perez et al.,
  2018) applied as conditional batch norm (de Vries et al., 2017). The class-label version is
  ``models.ConditionalBatchNorm2d``.
- ``sn_trunk``: three strided, spectrally normalised convolutions, ``[3, 32, 32]`` -> ``[4ch, 4, 4]``, the feature
  extractor of the book's 32x32 discriminators (Miyato et al., 2018).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .repro import make_generator


def sample_latents(n: int, z_dim: int, seed: int | None, device="cpu", truncation: float | None = None) -> torch.Tensor:
    """``[n, z_dim]`` standard normal latents drawn on the CPU with ``seed`` (the same on every device).

    With ``truncation`` t, values with ``|z| > t`` are redrawn (the truncation trick of BigGAN); t must be at least
    0.05, since the redrawing loop takes time in proportion to 1/t.
    """
    gen = make_generator(seed)
    z = torch.randn(n, z_dim, generator=gen)
    if truncation is not None:
        if not truncation >= 0.05:
            raise ValueError(f"truncation must be at least 0.05 (or None for no truncation), not {truncation}")
        while (bad := z.abs() > truncation).any():
            z[bad] = torch.randn(int(bad.sum()), generator=gen)
    return z.to(device)


class FiLMBatchNorm2d(nn.Module):
    """``BN(h) * (1 + W_g c) + W_b c``: batch norm with a per-channel scale and shift computed from a condition ``c``.

    The two linear maps start at zero, so an untrained layer is a plain batch norm.
    """

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels)
        self.bias = nn.Linear(cond_dim, channels)
        for layer in (self.gain, self.bias):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * (1 + self.gain(cond))[:, :, None, None] + self.bias(cond)[:, :, None, None]


def sn_trunk(ch: int) -> list[nn.Module]:
    """Three strided, spectrally normalised convolutions with LeakyReLU(0.2): ``[3, 32, 32]`` -> ``[4ch, 4, 4]``.

    Returned as a list of layers, so that a discriminator can put more layers after them in one ``nn.Sequential``.
    """
    return [spectral_norm(nn.Conv2d(3, ch, 4, 2, 1)), nn.LeakyReLU(0.2),            # 16 x 16
            spectral_norm(nn.Conv2d(ch, 2 * ch, 4, 2, 1)), nn.LeakyReLU(0.2),       # 8 x 8
            spectral_norm(nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1)), nn.LeakyReLU(0.2)]   # 4 x 4
