"""Diffusion's building blocks: the noise schedule, the step's features, and a tiny diffusion decoder.

Serves the chapter "CLIP and DALL-E 2's real design, in miniature" (book/clip_unclip.ipynb), where unCLIP's prior
(``unclip.DiffusionPrior``) and a tiny diffusion decoder are built on them.

- ``cosine_schedule``: ``alpha_bar_t`` of the cosine schedule (Nichol & Dhariwal, 2021).
- ``timestep_features``: sinusoidal features of the step, as Transformers encode positions.
- ``TinyDiffusionDecoder``: a three-level U-Net that predicts the noise in an image given the step and a CLIP image
  embedding (Ho et al., 2020), trained with embedding dropout for classifier-free guidance (Ho & Salimans, 2022)
  and sampled with DDIM (Song et al., 2021). Its trainer is ``unclip.train_diffusion_decoder``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .repro import make_generator


def cosine_schedule(timesteps: int) -> torch.Tensor:
    """``alpha_bar_t`` for ``t = 1..T`` of the cosine noise schedule (Nichol & Dhariwal, 2021)."""
    s = 0.008
    f = torch.cos((torch.arange(timesteps + 1, dtype=torch.float64) / timesteps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0).float()


def timestep_features(t: torch.Tensor, timesteps: int, dim: int = 32) -> torch.Tensor:
    """Sinusoidal features of the step ``t`` (integers in ``0..T-1``), as Transformers encode positions."""
    freqs = torch.exp(-math.log(1000.0) * torch.arange(dim // 2, device=t.device) / (dim // 2))
    angles = (t.float()[:, None] / timesteps * 1000.0) * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class TinyDiffusionDecoder(nn.Module):
    """A small diffusion decoder on the same CLIP image embeddings: DALL-E 2's kind of decoder, at toy scale.

    A three-level U-Net predicts the noise ``eps`` in ``x_t`` (Ho et al., 2020) given the step and the embedding,
    which scale and shift every level's features; the embedding also enters the 8 x 8 bottleneck as a map, since a
    convolution alone cannot tell where in the image it is (and position is part of the caption). The embedding is dropped (set to zero) for a share of the training
    images, so the same network also learns the unconditional model that classifier-free guidance (Ho & Salimans,
    2022) extrapolates away from. Sampling is deterministic DDIM (Song et al., 2021) on a subset of the steps.
    """

    def __init__(self, embed_dim: int = 64, ch: int = 8, timesteps: int = 100):
        super().__init__()
        self.embed_dim, self.timesteps = embed_dim, timesteps
        widths = [ch, 2 * ch, 4 * ch, 2 * ch, ch]                 # the five feature maps that are modulated
        self.widths = widths
        self.cond = nn.Sequential(nn.Linear(embed_dim + 32, 128), nn.SiLU(), nn.Linear(128, 2 * sum(widths)))
        self.conv_in = nn.Conv2d(3, ch, 3, 1, 1)                           # 32 x 32
        self.down1 = nn.Conv2d(ch, 2 * ch, 4, 2, 1)                        # 16 x 16
        self.down2 = nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1)                    # 8 x 8
        self.to_map = nn.Linear(embed_dim, 4 * ch * 8 * 8)                 # the embedding as an 8 x 8 map: where
        self.up1 = nn.ConvTranspose2d(4 * ch, 2 * ch, 4, 2, 1)             # 16 x 16, then joined with down1's map
        self.merge1 = nn.Conv2d(4 * ch, 2 * ch, 3, 1, 1)
        self.up2 = nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1)                 # 32 x 32, then joined with conv_in's map
        self.merge2 = nn.Conv2d(2 * ch, ch, 3, 1, 1)
        self.conv_out = nn.Conv2d(ch, 3, 3, 1, 1)
        self.norms = nn.ModuleList(nn.GroupNorm(min(4, w), w, affine=False) for w in widths)
        self.register_buffer("alpha_bar", cosine_schedule(timesteps), persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The predicted noise in images ``x`` (in [-1, 1] scale) at steps ``t`` for embeddings ``emb``."""
        emb = emb * math.sqrt(self.embed_dim)          # unit vectors -> coordinates of order 1, like the step features
        films = self.cond(torch.cat([emb, timestep_features(t, self.timesteps)], 1)).split(
            [2 * w for w in self.widths], dim=1)

        def block(h, i):
            scale, shift = films[i].chunk(2, dim=1)
            return F.silu(self.norms[i](h) * (1 + scale[:, :, None, None]) + shift[:, :, None, None])

        h1 = block(self.conv_in(x), 0)
        h2 = block(self.down1(h1), 1)
        h3 = block(self.down2(h2) + self.to_map(emb).view(len(x), -1, 8, 8), 2)
        u1 = block(self.merge1(torch.cat([self.up1(h3), h2], 1)), 3)
        u2 = block(self.merge2(torch.cat([self.up2(u1), h1], 1)), 4)
        return self.conv_out(u2)

    def loss(self, images: torch.Tensor, emb: torch.Tensor, drop: float = 0.1,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Noise-prediction MSE on images in [-1, 1]; a share ``drop`` of the embeddings is zeroed (for guidance)."""
        n, device = len(images), images.device
        t = torch.randint(0, self.timesteps, (n,), generator=generator).to(device)
        noise = torch.randn(images.shape, generator=generator).to(device)
        keep = (torch.rand(n, 1, generator=generator) >= drop).to(device, emb.dtype)
        a = self.alpha_bar[t][:, None, None, None]
        return F.mse_loss(self(a.sqrt() * images + (1 - a).sqrt() * noise, t, emb * keep), noise)

    @torch.no_grad()
    def generate(self, embeddings: torch.Tensor, seed: int | None = None, steps: int = 25,
                 guidance: float = 1.0) -> torch.Tensor:
        """Images ``[N, 3, 32, 32]`` in [0, 1] by DDIM with ``steps`` steps; ``guidance`` > 1 is classifier-free
        guidance ``eps_u + guidance * (eps_c - eps_u)``."""
        if embeddings.dim() != 2 or embeddings.shape[1] != self.embed_dim:
            raise ValueError(f"expected embeddings of shape [N, {self.embed_dim}], got {tuple(embeddings.shape)}")
        device = self.conv_in.weight.device
        emb = F.normalize(embeddings.to(device).float(), dim=1)
        x = torch.randn(len(emb), 3, 32, 32, generator=make_generator(seed)).to(device)
        ts = torch.linspace(self.timesteps - 1, 0, steps).round().long().tolist()
        for i, t in enumerate(ts):
            tt = torch.full((len(x),), t, device=device, dtype=torch.long)
            eps = self(x, tt, emb)
            if guidance != 1.0:
                eps_u = self(x, tt, torch.zeros_like(emb))
                eps = eps_u + guidance * (eps - eps_u)
            a = self.alpha_bar[t]
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
            a_next = self.alpha_bar[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, device=device)
            x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
        return (x.clamp(-1, 1) + 1) / 2


