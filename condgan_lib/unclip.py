"""unCLIP, the design of DALL-E 2 (Ramesh et al., 2022), in miniature, on top of the CLIP of ``condgan_lib.clip``.

A caption goes to its CLIP text embedding ``z_t``; a *prior* turns ``z_t`` into a CLIP image embedding ``z_i``; a
*decoder* turns ``z_i`` into an image.

- ``DiffusionPrior``: a denoising diffusion model (Ho et al., 2020) over CLIP image embeddings, conditioned on the text
  embedding; as in the paper's diffusion prior, the network predicts the clean embedding ``z_i`` itself and is trained
  with a mean-squared error on that prediction. The paper's network is a Transformer; this one is an MLP.
- ``EmbeddingConditionedGenerator`` and ``EmbeddingProjectionDiscriminator``: the decoder, here a conditional GAN that
  generates an image from a CLIP image embedding: the idea of LAFITE (Zhou et al., 2022), which trains a GAN on CLIP
  image embeddings of images alone, with no captions, perturbing the embeddings with noise so that text embeddings
  can stand in for them at test time, and adds a contrastive term computed with CLIP on the generated images.
  DALL-E 2's decoder is a diffusion model instead.
- ``UnCLIP``: the chain caption -> prior -> decoder, image variations and text diffs.
- ``measure_prior``, ``measure_decoder``; ``train_prior``, ``train_decoder``: the trainers behind
  ``python -m condgan_lib.train --config shapes-prior`` and ``--config shapes-decoder``.

The prior and the decoder are trained on the embeddings of one CLIP (the config's ``clip``): after re-training that
CLIP, re-train both.
"""
from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from tqdm.auto import tqdm

from . import losses, shapes
from .clip import CLIPModel, resume_run, run_loss_steps, save_run_checkpoint, training_pairs
from .models import _noise


def _generator(seed: int | None) -> torch.Generator:
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen


# ------------------------------------------------------------------------------------------------------ the prior

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


class DiffusionPrior(nn.Module):
    """``p(z_i | z_t)``: a diffusion model over CLIP image embeddings, conditioned on the CLIP text embedding.

    Embeddings are unit vectors; the diffusion runs on them scaled by ``sqrt(embed_dim)``, so that each coordinate has
    unit variance like the noise. ``forward(noisy, t, text_emb)`` predicts the clean (scaled) image embedding.
    """

    def __init__(self, embed_dim: int = 64, hidden: int = 512, depth: int = 3, timesteps: int = 100):
        super().__init__()
        self.embed_dim, self.timesteps = embed_dim, timesteps
        layers, width = [], 2 * embed_dim + 32
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(hidden, embed_dim))
        self.register_buffer("alpha_bar", cosine_schedule(timesteps), persistent=False)

    @property
    def scale(self) -> float:
        return math.sqrt(self.embed_dim)

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        h = torch.cat([noisy, text_emb * self.scale, timestep_features(t, self.timesteps)], dim=1)
        return self.net(h)

    def add_noise(self, clean: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``q(x_t | x_0)``: ``sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise``."""
        a = self.alpha_bar[t][:, None]
        return a.sqrt() * clean + (1 - a).sqrt() * noise

    def loss(self, image_emb: torch.Tensor, text_emb: torch.Tensor, generator: torch.Generator | None = None):
        """The training loss: noise the image embeddings at random steps, predict them back, mean-squared error."""
        clean = image_emb * self.scale
        t = torch.randint(0, self.timesteps, (len(clean),), generator=generator).to(clean.device)
        noise = torch.randn(clean.shape, generator=generator).to(clean.device)
        return F.mse_loss(self(self.add_noise(clean, t, noise), t, text_emb), clean)

    @torch.no_grad()
    def sample(self, text_emb: torch.Tensor, seed: int | None = None, candidates: int = 1) -> torch.Tensor:
        """Unit-norm image embeddings for text embeddings ``[N, d]``, by ancestral sampling from ``x_T ~ N(0, I)``.

        With ``candidates = k > 1``, ``k`` embeddings are drawn per caption and the one with the highest dot product
        with ``z_t`` is kept (the paper draws two).
        """
        gen = _generator(seed)
        n, device = len(text_emb), text_emb.device
        cond = text_emb.repeat_interleave(candidates, dim=0)
        x = torch.randn(len(cond), self.embed_dim, generator=gen).to(device)
        for t in reversed(range(self.timesteps)):
            tt = torch.full((len(x),), t, device=device, dtype=torch.long)
            x0 = F.normalize(self(x, tt, cond), dim=1) * self.scale   # the prediction, put back on the sphere
            if t == 0:
                x = x0
                break
            a_t, a_prev = self.alpha_bar[t], self.alpha_bar[t - 1]
            beta = 1 - a_t / a_prev
            mean = (a_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - a_prev) * x) / (1 - a_t)
            var = beta * (1 - a_prev) / (1 - a_t)
            x = mean + var.sqrt() * torch.randn(x.shape, generator=gen).to(device)
        z = F.normalize(x, dim=1).view(n, candidates, -1)
        best = (z * text_emb[:, None, :]).sum(-1).argmax(dim=1)
        return z[torch.arange(n), best]


# ---------------------------------------------------------------------------------------------------- the decoder

class EmbeddingBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are linear functions of a CLIP embedding (conditional batch norm with a
    continuous condition): ``BN(h) * (1 + W_g e) + W_b e``."""

    def __init__(self, channels: int, embed_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(embed_dim, channels)
        self.bias = nn.Linear(embed_dim, channels)
        for layer in (self.gain, self.bias):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * (1 + self.gain(emb))[:, :, None, None] + self.bias(emb)[:, :, None, None]


class EmbeddingConditionedGenerator(nn.Module):
    """The decoder: ``G(z, z_i)``, a DCGAN-style generator of ``[3, 32, 32]`` images from noise ``z`` and a CLIP
    image embedding ``z_i``; the embedding enters with the noise and sets the scale and shift of every block."""

    def __init__(self, z_dim: int = 32, embed_dim: int = 64, ch: int = 32):
        super().__init__()
        self.z_dim, self.embed_dim = z_dim, embed_dim
        self.fc = nn.Linear(z_dim + embed_dim, 4 * ch * 4 * 4)
        self.norm0 = EmbeddingBatchNorm2d(4 * ch, embed_dim)
        self.up1 = nn.ConvTranspose2d(4 * ch, 2 * ch, 4, 2, 1, bias=False)   # 8 x 8
        self.norm1 = EmbeddingBatchNorm2d(2 * ch, embed_dim)
        self.up2 = nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1, bias=False)       # 16 x 16
        self.norm2 = EmbeddingBatchNorm2d(ch, embed_dim)
        self.up3 = nn.ConvTranspose2d(ch, 3, 4, 2, 1)                        # 32 x 32, RGB

    def forward(self, z: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from latents ``z`` and unit-norm embeddings ``emb``."""
        h = self.fc(torch.cat([z, emb], dim=1)).view(len(z), -1, 4, 4)
        h = torch.relu(self.norm0(h, emb))
        h = torch.relu(self.norm1(self.up1(h), emb))
        h = torch.relu(self.norm2(self.up2(h), emb))
        return torch.tanh(self.up3(h))

    @torch.no_grad()
    def generate(self, embeddings: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """Images ``[N, 3, 32, 32]`` in [0, 1] for CLIP image embeddings ``[N, embed_dim]``; reproducible per ``seed``."""
        if embeddings.dim() != 2 or embeddings.shape[1] != self.embed_dim:
            raise ValueError(f"expected embeddings of shape [N, {self.embed_dim}], got {tuple(embeddings.shape)}")
        device = next(self.parameters()).device
        z = _noise(len(embeddings), self.z_dim, seed, device)
        return (self(z, F.normalize(embeddings.to(device).float(), dim=1)) + 1) / 2


class EmbeddingProjectionDiscriminator(nn.Module):
    """``D(x, e) = psi(phi(x)) + <W e, phi(x)>``: the projection discriminator (Miyato & Koyama, 2018) with a CLIP
    embedding in place of the class label, spectrally normalised."""

    def __init__(self, embed_dim: int = 64, ch: int = 32, features: int = 256):
        super().__init__()
        self.trunk = nn.Sequential(
            spectral_norm(nn.Conv2d(3, ch, 4, 2, 1)), nn.LeakyReLU(0.2),            # 16 x 16
            spectral_norm(nn.Conv2d(ch, 2 * ch, 4, 2, 1)), nn.LeakyReLU(0.2),       # 8 x 8
            spectral_norm(nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1)), nn.LeakyReLU(0.2),   # 4 x 4
            nn.Flatten(), spectral_norm(nn.Linear(4 * ch * 16, features)), nn.LeakyReLU(0.2))
        self.head = spectral_norm(nn.Linear(features, 1))
        self.embed = spectral_norm(nn.Linear(embed_dim, features, bias=False))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        phi = self.trunk(x)
        return self.head(phi).squeeze(1) + (self.embed(emb) * phi).sum(1)


def perturb_embeddings(emb: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """LAFITE's Gaussian perturbation of image embeddings: ``normalize(e + strength * |e| * eps / |eps|)``."""
    if strength == 0:
        return emb
    eps = torch.randn(emb.shape, generator=generator).to(emb.device)
    return F.normalize(emb + strength * emb.norm(dim=1, keepdim=True) * F.normalize(eps, dim=1), dim=1)


def contrastive_image_loss(clip: CLIPModel, fakes: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """LAFITE's contrastive term for the generator: each generated image's CLIP embedding should pick its own
    condition out of the batch (a cross-entropy over the batch, at CLIP's temperature)."""
    logits = clip.encode_images((fakes + 1) / 2) @ emb.T / clip.temperature
    return F.cross_entropy(logits, torch.arange(len(fakes), device=fakes.device))


# ------------------------------------------------------------------------------------------------ the pipeline

class UnCLIP:
    """caption -> CLIP text embedding ``z_t`` -> prior -> CLIP image embedding ``z_i`` -> decoder -> image."""

    def __init__(self, clip: CLIPModel, prior: DiffusionPrior, decoder: EmbeddingConditionedGenerator):
        self.clip, self.prior, self.decoder = clip.eval(), prior.eval(), decoder.eval()

    @classmethod
    def from_pretrained(cls, clip: str = "shapes-clip", prior: str = "shapes-prior",
                        decoder: str = "shapes-decoder") -> "UnCLIP":
        """The chain of three shipped checkpoints (each trained when absent)."""
        from .hub import train_or_load
        return cls(train_or_load(clip), train_or_load(prior), train_or_load(decoder))

    def image_embeddings(self, captions: list[str], seed: int | None = 0, candidates: int = 2) -> torch.Tensor:
        """The prior's CLIP image embeddings for captions."""
        return self.prior.sample(self.clip.encode_captions(captions), seed=seed, candidates=candidates)

    def generate(self, captions: list[str], seed: int | None = 0) -> torch.Tensor:
        """Images ``[N, 3, 32, 32]`` in [0, 1] for captions, through the prior and the decoder."""
        return self.decoder.generate(self.image_embeddings(captions, seed), seed=seed)

    @torch.no_grad()
    def variations(self, images: torch.Tensor, n: int = 4, seed: int = 0) -> torch.Tensor:
        """``n`` variations of each image: encode it with CLIP, decode the embedding with new noise ``[N * n, ...]``."""
        emb = self.clip.encode_images(images).repeat_interleave(n, dim=0)
        return self.decoder.generate(emb, seed=seed)

    @torch.no_grad()
    def text_diff(self, image: torch.Tensor, old_caption: str, new_caption: str, thetas: list[float],
                  seed: int = 0) -> torch.Tensor:
        """Edit one image towards a new caption: rotate its embedding ``z_i`` towards the text diff
        ``z_d = normalize(z_t(new) - z_t(old))`` by ``slerp(z_i, z_d, theta)`` for each theta, decoding every
        step with the same noise. Returns ``[len(thetas), 3, 32, 32]``."""
        z_i = self.clip.encode_images(image[None] if image.dim() == 3 else image)[0]
        z_t = self.clip.encode_captions([old_caption, new_caption])
        z_d = F.normalize(z_t[1] - z_t[0], dim=0)
        emb = torch.stack([slerp(z_i, z_d, th) for th in thetas])
        z = _noise(1, self.decoder.z_dim, seed, emb.device).expand(len(thetas), -1)
        return (self.decoder(z, emb) + 1) / 2


def slerp(a: torch.Tensor, b: torch.Tensor, theta: float) -> torch.Tensor:
    """Spherical interpolation between unit vectors ``a`` and ``b``: ``theta = 0`` gives ``a``, ``1`` gives ``b``."""
    omega = torch.arccos((a @ b).clamp(-1 + 1e-7, 1 - 1e-7))
    return (torch.sin((1 - theta) * omega) * a + torch.sin(theta * omega) * b) / torch.sin(omega)


# ------------------------------------------------------------------------------------------------- measuring

def held_out_captions(n: int = 500, seed: int = 20_000, split: str = "test") -> shapes.ShapesBatch:
    """The captions (with their real images and attributes) every unCLIP number is measured on."""
    return shapes.sample_batch(n, seed=seed, split=split)


@torch.no_grad()
def measure_prior(prior: DiffusionPrior, clip: CLIPModel, n: int = 500, seed: int = 20_000,
                  split: str = "test") -> dict:
    """How close the prior's embeddings come to the true image embeddings of held-out pairs (mean cosine), beside
    the trivial prior that returns the text embedding itself."""
    batch = held_out_captions(n, seed, split)
    z_t, z_i = clip.encode_captions(batch.captions), clip.encode_images(batch.images)
    sampled = prior.sample(z_t, seed=seed, candidates=2)
    return {"prior_cosine": round((sampled * z_i).sum(1).mean().item(), 4),
            "text_embedding_cosine": round((z_t * z_i).sum(1).mean().item(), 4), "n": n}


def clip_score(clip: CLIPModel, images: torch.Tensor, captions: list[str]) -> float:
    """Mean cosine between the CLIP embeddings of images and of their captions."""
    with torch.no_grad():
        return (clip.encode_images(images) * clip.encode_captions(captions)).sum(1).mean().item()


@torch.no_grad()
def measure_decoder(decoder: EmbeddingConditionedGenerator, clip: CLIPModel, prior: DiffusionPrior,
                    probe=None, n: int = 500, seed: int = 20_000, split: str = "test") -> dict:
    """CLIP score of the whole chain's images for held-out captions beside that of the real images, and (with an
    attribute ``probe``) the share of generated images whose attributes match their caption."""
    batch = held_out_captions(n, seed, split)
    fakes = UnCLIP(clip, prior, decoder).generate(batch.captions, seed=seed)
    out = {"clip_score": clip_score(clip, fakes, batch.captions),
           "clip_score_real": clip_score(clip, batch.images, batch.captions)}
    if probe is not None:
        from .probe import attribute_accuracy
        for key, value in attribute_accuracy(probe, fakes, batch.attributes).items():
            out[f"probe_{key}"] = value
    return {**{k: round(float(v), 4) for k, v in out.items()}, "n": n}


def load_probe():
    """The shipped attribute probe (``condgan_lib.probe``), or None when it is not shipped."""
    from .hub import CheckpointError
    from .probe import load_probe as shipped_probe
    try:
        return shipped_probe()
    except (ValueError, CheckpointError, KeyError):
        return None


def recompute_metrics(name: str, entry: dict) -> dict:
    """The metrics the manifest records for the shipped CLIP, prior or decoder ``name``, measured again with the
    same seeds and sample size (``python -m condgan_lib.evaluate NAME --check``)."""
    from .clip import measure_clip
    from .hub import load_pretrained
    n, cfg = entry["metrics"].get("n", 500), entry["config"]
    if entry["kind"] == "CLIPModel":
        return measure_clip(load_pretrained(name), n=n)
    if entry["kind"] == "DiffusionPrior":
        return measure_prior(load_pretrained(name), load_pretrained(cfg["clip"]), n=n)
    probe = load_probe()
    return measure_decoder(load_pretrained(name), load_pretrained(cfg["clip"]), load_pretrained(cfg["prior"]),
                           probe, n=n)


# ------------------------------------------------------------------------------------------------- the trainers

@torch.no_grad()
def embed_training_set(clip: CLIPModel, n: int, seed: int, device: str) -> tuple[torch.Tensor, ...]:
    """Images in [-1, 1], CLIP image and text embeddings of the run's fixed training set."""
    data = training_pairs(n, seed)
    clip = clip.to(device).eval()
    img = torch.cat([clip.encode_images(data.images[i:i + 1000].to(device)) for i in range(0, n, 1000)])
    txt = torch.cat([clip.encode_captions(data.captions[i:i + 1000]) for i in range(0, n, 1000)])
    return data.images.to(device) * 2 - 1, img, txt


def train_prior(cfg, device: str, out: Path, resume: bool, progress: bool, evaluate: bool) -> dict:
    """Train ``DiffusionPrior`` on (text, image) embedding pairs of the frozen CLIP ``cfg.clip``."""
    from .data import random_batches
    from .hub import train_or_load
    from .train import _jsonable

    cfg.validate()
    config = _jsonable(cfg.to_dict())
    clip = train_or_load(cfg.clip, device=device, progress=progress)
    torch.manual_seed(cfg.seed)
    kwargs = {"embed_dim": clip.embed_dim, "hidden": cfg.hidden, "depth": cfg.depth, "timesteps": cfg.timesteps}
    prior = DiffusionPrior(**kwargs).to(device)
    opt = torch.optim.AdamW(prior.parameters(), lr=cfg.lr, weight_decay=0.0)
    _, z_i, z_t = embed_training_set(clip, cfg.train_size, cfg.seed, device)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 1)

    start, history, wall_before = 0, [], 0.0
    state = resume_run(out, config) if resume else None
    if state is not None:
        prior.load_state_dict(state["model"]), opt.load_state_dict(state["opt"])
        noise_gen.set_state(state["noise"])
        start, history, wall_before = state["step"], json.loads(state["history"]), state["wall_time_s"]
    batches = random_batches(z_i, z_t, cfg.batch_size, seed=cfg.seed, start_step=start)
    t0 = run_loss_steps(cfg, prior, opt, batches, lambda batch: prior.loss(*batch, generator=noise_gen), out, config,
                        start, history, wall_before, progress, extra_state=lambda: {"noise": noise_gen.get_state()})
    prior = prior.cpu().eval()
    measured = measure_prior(prior, clip.cpu()) if evaluate else {}
    return {"model": prior, "kwargs": kwargs, "steps": cfg.steps, "history": history, "metrics": measured,
            "wall_time_s": round(wall_before + time.perf_counter() - t0, 1)}


def train_decoder(cfg, device: str, out: Path, resume: bool, progress: bool, evaluate: bool) -> dict:
    """Train the embedding-conditioned GAN on (image, CLIP image embedding) pairs: hinge loss, projection
    discriminator, LAFITE's perturbed embeddings and contrastive term, generator EMA."""
    from torch.optim.swa_utils import AveragedModel

    from .data import random_batches
    from .hub import train_or_load
    from .train import _jsonable, ema_avg_fn

    cfg.validate()
    config = _jsonable(cfg.to_dict())
    clip = train_or_load(cfg.clip, device=device, progress=progress).eval()
    for p in clip.parameters():
        p.requires_grad_(False)
    torch.manual_seed(cfg.seed)
    kwargs = {"z_dim": cfg.z_dim, "embed_dim": clip.embed_dim, "ch": cfg.ch}
    G = EmbeddingConditionedGenerator(**kwargs).to(device)
    D = EmbeddingProjectionDiscriminator(embed_dim=clip.embed_dim, ch=cfg.ch).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=tuple(cfg.betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=tuple(cfg.betas))
    ema = AveragedModel(G, avg_fn=ema_avg_fn(cfg.ema_decay), use_buffers=True)
    images, z_i, _ = embed_training_set(clip, cfg.train_size, cfg.seed, device)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 1)

    start, history, wall_before = 0, [], 0.0
    state = resume_run(out, config) if resume else None
    if state is not None:
        G.load_state_dict(state["G"]), D.load_state_dict(state["D"]), ema.load_state_dict(state["ema"])
        opt_g.load_state_dict(state["opt_g"]), opt_d.load_state_dict(state["opt_d"])
        noise_gen.set_state(state["noise"])
        start, history, wall_before = state["step"], json.loads(state["history"]), state["wall_time_s"]
    batches = random_batches(images, z_i, cfg.batch_size, seed=cfg.seed, start_step=start)
    t0 = time.perf_counter()
    G.train(), D.train()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=cfg.name, disable=not progress)
    for step in bar:
        real, emb = next(batches)
        cond = perturb_embeddings(emb, cfg.embed_noise, noise_gen)
        z = torch.randn(len(real), cfg.z_dim, generator=noise_gen).to(device)
        fake = G(z, cond)
        d_loss = losses.hinge_d_loss(D(real, cond), D(fake.detach(), cond))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_adv = losses.hinge_g_loss(D(fake, cond))
        g_clip = contrastive_image_loss(clip, fake, cond) if cfg.clip_weight else torch.zeros((), device=device)
        g_loss = g_adv + cfg.clip_weight * g_clip
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        ema.update_parameters(G)
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            values = {"d_loss": d_loss.item(), "g_loss": g_adv.item(), "g_clip": g_clip.item()}
            if not all(math.isfinite(v) for v in values.values()):
                raise ValueError(f"{cfg.name}: non-finite loss at step {step + 1} ({values}); training stopped, "
                                 f"the last good checkpoint in {out / 'checkpoints'} is kept")
            history.append({"step": step + 1, **{k: round(v, 4) for k, v in values.items()}})
            bar.set_postfix(D=f"{values['d_loss']:.3f}", G=f"{values['g_loss']:.3f}", clip=f"{values['g_clip']:.3f}")
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            save_run_checkpoint(out, step + 1, {
                "config": config, "G": G.state_dict(), "D": D.state_dict(), "ema": ema.state_dict(),
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "noise": noise_gen.get_state(),
                "history": json.dumps(history), "wall_time_s": wall_before + time.perf_counter() - t0})
    decoder = copy.deepcopy(ema.module).cpu().eval()
    measured = {}
    if evaluate:
        measured = measure_decoder(decoder, clip.cpu(), train_or_load(cfg.prior, progress=progress), load_probe())
    return {"model": decoder, "kwargs": kwargs, "steps": cfg.steps, "history": history, "metrics": measured,
            "wall_time_s": round(wall_before + time.perf_counter() - t0, 1)}


# ------------------------------------------------------------------------ stretch: a tiny diffusion decoder

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
        x = torch.randn(len(emb), 3, 32, 32, generator=_generator(seed)).to(device)
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


def train_diffusion_decoder(cfg, device: str, out: Path, resume: bool, progress: bool, evaluate: bool) -> dict:
    """Train ``TinyDiffusionDecoder`` on (image, CLIP image embedding) pairs of the frozen CLIP ``cfg.clip``, with an
    exponential moving average of its weights (the shipped model)."""
    from torch.optim.swa_utils import AveragedModel

    from .data import random_batches
    from .hub import train_or_load
    from .train import _jsonable, ema_avg_fn

    cfg.validate()
    config = _jsonable(cfg.to_dict())
    clip = train_or_load(cfg.clip, device=device, progress=progress).eval()
    torch.manual_seed(cfg.seed)
    kwargs = {"embed_dim": clip.embed_dim, "ch": cfg.ch, "timesteps": cfg.timesteps}
    model = TinyDiffusionDecoder(**kwargs).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    ema = AveragedModel(model, avg_fn=ema_avg_fn(cfg.ema_decay), use_buffers=True)
    images, z_i, _ = embed_training_set(clip, cfg.train_size, cfg.seed, device)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 1)

    start, history, wall_before = 0, [], 0.0
    state = resume_run(out, config) if resume else None
    if state is not None:
        model.load_state_dict(state["model"]), ema.load_state_dict(state["ema"]), opt.load_state_dict(state["opt"])
        noise_gen.set_state(state["noise"])
        start, history, wall_before = state["step"], json.loads(state["history"]), state["wall_time_s"]
    batches = random_batches(images, z_i, cfg.batch_size, seed=cfg.seed, start_step=start)
    t0 = run_loss_steps(cfg, model, opt, batches,
                        lambda batch: model.loss(*batch, drop=cfg.cond_drop, generator=noise_gen), out, config, start,
                        history, wall_before, progress, after_step=lambda: ema.update_parameters(model),
                        extra_state=lambda: {"ema": ema.state_dict(), "noise": noise_gen.get_state()})
    decoder = copy.deepcopy(ema.module).cpu().eval()
    measured = {}
    if evaluate:
        measured = measure_decoder(decoder, clip.cpu(), train_or_load(cfg.prior, progress=progress), load_probe(),
                                   n=cfg.eval_samples)
    return {"model": decoder, "kwargs": kwargs, "steps": cfg.steps, "history": history, "metrics": measured,
            "wall_time_s": round(wall_before + time.perf_counter() - t0, 1)}
