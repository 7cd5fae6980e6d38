"""Chapter "CLIP and DALL-E 2's real design, in miniature": unCLIP, the design of DALL-E 2 (Ramesh et al., 2022), in miniature, on top of the CLIP of ``condgan_lib.clip``.

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
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from . import hub, losses, registry, shapes
from .clip import CLIPModel, training_pairs
from .configs import DecoderConfig, DiffusionDecoderConfig, PriorConfig
from .data import random_batches
from .diffusion import TinyDiffusionDecoder, cosine_schedule, timestep_features
from .engine import RunContext, TrainResult, TrainState, backward_step, fit, loss_step, make_ema
from .layers import FiLMBatchNorm2d, sample_latents, sn_trunk
from .probe import attribute_accuracy, load_probe_or_none
from .repro import make_generator


# ------------------------------------------------------------------------------------------------------ the prior

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
        gen = make_generator(seed)
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

class EmbeddingConditionedGenerator(nn.Module):
    """The decoder: ``G(z, z_i)``, a DCGAN-style generator of ``[3, 32, 32]`` images from noise ``z`` and a CLIP
    image embedding ``z_i``; the embedding enters with the noise and sets the scale and shift of every block."""

    def __init__(self, z_dim: int = 32, embed_dim: int = 64, ch: int = 32):
        super().__init__()
        self.z_dim, self.embed_dim = z_dim, embed_dim
        self.fc = nn.Linear(z_dim + embed_dim, 4 * ch * 4 * 4)
        self.norm0 = FiLMBatchNorm2d(4 * ch, embed_dim)
        self.up1 = nn.ConvTranspose2d(4 * ch, 2 * ch, 4, 2, 1, bias=False)   # 8 x 8
        self.norm1 = FiLMBatchNorm2d(2 * ch, embed_dim)
        self.up2 = nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1, bias=False)       # 16 x 16
        self.norm2 = FiLMBatchNorm2d(ch, embed_dim)
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
        z = sample_latents(len(embeddings), self.z_dim, seed, device)
        return (self(z, F.normalize(embeddings.to(device).float(), dim=1)) + 1) / 2


class EmbeddingProjectionDiscriminator(nn.Module):
    """``D(x, e) = psi(phi(x)) + <W e, phi(x)>``: the projection discriminator (Miyato & Koyama, 2018) with a CLIP
    embedding in place of the class label, spectrally normalised."""

    def __init__(self, embed_dim: int = 64, ch: int = 32, features: int = 256):
        super().__init__()
        self.trunk = nn.Sequential(*sn_trunk(ch),                                    # 4 x 4
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
        """The chain of three shipped checkpoints."""
        return cls(hub.load_pretrained(clip), hub.load_pretrained(prior), hub.load_pretrained(decoder))

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
        z = sample_latents(1, self.decoder.z_dim, seed, emb.device).expand(len(thetas), -1)
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
        for key, value in attribute_accuracy(probe, fakes, batch.attributes).items():
            out[f"probe_{key}"] = value
    return {**{k: round(float(v), 4) for k, v in out.items()}, "n": n}


def load_probe():
    """The shipped attribute probe (``condgan_lib.probe``), or None when it is not shipped."""
    return load_probe_or_none()


# ------------------------------------------------------------------------------------------------- the trainers

@torch.no_grad()
def embed_training_set(clip: CLIPModel, n: int, seed: int, device: str) -> tuple[torch.Tensor, ...]:
    """Images in [-1, 1], CLIP image and text embeddings of the run's fixed training set."""
    data = training_pairs(n, seed)
    clip = clip.to(device).eval()
    img = torch.cat([clip.encode_images(data.images[i:i + 1000].to(device)) for i in range(0, n, 1000)])
    txt = torch.cat([clip.encode_captions(data.captions[i:i + 1000]) for i in range(0, n, 1000)])
    return data.images.to(device) * 2 - 1, img, txt


def train_prior(cfg: PriorConfig, ctx: RunContext) -> TrainResult:
    """Train ``DiffusionPrior`` on (text, image) embedding pairs of the frozen CLIP ``cfg.clip`` (``ctx.require``)."""
    cfg.validate()
    device = ctx.device
    clip = ctx.require(cfg.clip).to(device).eval()
    torch.manual_seed(cfg.seed)
    kwargs = {"embed_dim": clip.embed_dim, "hidden": cfg.hidden, "depth": cfg.depth, "timesteps": cfg.timesteps}
    prior = DiffusionPrior(**kwargs).to(device)
    opt = torch.optim.AdamW(prior.parameters(), lr=cfg.lr, weight_decay=0.0)
    _, z_i, z_t = embed_training_set(clip, cfg.train_size, cfg.seed, device)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
    state = TrainState(modules={"model": prior}, optimizers={"model": opt}, generators={"noise": noise_gen},
                       ema_of="model")

    def make_step(start: int):
        batches = random_batches(z_i, z_t, cfg.batch_size, seed=cfg.seed, start_step=start)
        return loss_step(prior, opt, batches, lambda batch: prior.loss(*batch, generator=noise_gen))

    fit(cfg, state, make_step, ctx)
    prior = prior.cpu().eval()
    measured = measure_prior(prior, clip.cpu()) if ctx.evaluate else {}
    return TrainResult(model=prior, kwargs=kwargs, steps=cfg.steps, wall_time_s=state.wall_time_s,
                       history=state.history, metrics=measured)


def decoder_step(cfg: DecoderConfig, G, D, opt_g, opt_d, clip: CLIPModel, real: torch.Tensor, emb: torch.Tensor,
                 noise_gen: torch.Generator) -> dict[str, torch.Tensor]:
    """One step of the LAFITE-style decoder: perturb the image embeddings, update D with the hinge loss on real and
    generated images, then G with the hinge loss and (with ``clip_weight``) CLIP's contrastive term."""
    cond = perturb_embeddings(emb, cfg.embed_noise, noise_gen)
    z = torch.randn(len(real), cfg.z_dim, generator=noise_gen).to(real.device)
    fake = G(z, cond)
    d_loss = losses.hinge_d_loss(D(real, cond), D(fake.detach(), cond))
    backward_step(d_loss, opt_d)
    g_adv = losses.hinge_g_loss(D(fake, cond))
    g_clip = contrastive_image_loss(clip, fake, cond) if cfg.clip_weight else torch.zeros((), device=real.device)
    backward_step(g_adv + cfg.clip_weight * g_clip, opt_g)
    return {"d_loss": d_loss.detach(), "g_loss": g_adv.detach(), "g_clip": g_clip.detach()}


def train_decoder(cfg: DecoderConfig, ctx: RunContext) -> TrainResult:
    """Train the embedding-conditioned GAN on (image, CLIP image embedding) pairs: hinge loss, projection
    discriminator, LAFITE's perturbed embeddings and contrastive term, generator EMA."""
    cfg.validate()
    device = ctx.device
    clip = ctx.require(cfg.clip).to(device).eval()
    clip.requires_grad_(False)
    torch.manual_seed(cfg.seed)
    kwargs = {"z_dim": cfg.z_dim, "embed_dim": clip.embed_dim, "ch": cfg.ch}
    G = EmbeddingConditionedGenerator(**kwargs).to(device)
    D = EmbeddingProjectionDiscriminator(embed_dim=clip.embed_dim, ch=cfg.ch).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=tuple(cfg.betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=tuple(cfg.betas))
    images, z_i, _ = embed_training_set(clip, cfg.train_size, cfg.seed, device)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
    state = TrainState(modules={"G": G, "D": D}, optimizers={"G": opt_g, "D": opt_d}, generators={"noise": noise_gen},
                       ema=make_ema(G, cfg.ema_decay), ema_of="G")

    def make_step(start: int):
        batches = random_batches(images, z_i, cfg.batch_size, seed=cfg.seed, start_step=start)

        def step(i: int) -> dict[str, torch.Tensor]:
            G.train(), D.train()
            real, emb = next(batches)
            return decoder_step(cfg, G, D, opt_g, opt_d, clip, real, emb, noise_gen)
        return step

    fit(cfg, state, make_step, ctx)
    decoder = copy.deepcopy(state.final_model()).cpu().eval()
    measured = {}
    if ctx.evaluate:
        measured = measure_decoder(decoder, clip.cpu(), ctx.require(cfg.prior), load_probe_or_none())
    return TrainResult(model=decoder, kwargs=kwargs, steps=cfg.steps, wall_time_s=state.wall_time_s,
                       history=state.history, metrics=measured)


def train_diffusion_decoder(cfg: DiffusionDecoderConfig, ctx: RunContext) -> TrainResult:
    """Train ``diffusion.TinyDiffusionDecoder`` on (image, CLIP image embedding) pairs of the frozen CLIP
    ``cfg.clip``, with an exponential moving average of its weights (the shipped model)."""
    cfg.validate()
    device = ctx.device
    clip = ctx.require(cfg.clip).to(device).eval()
    torch.manual_seed(cfg.seed)
    kwargs = {"embed_dim": clip.embed_dim, "ch": cfg.ch, "timesteps": cfg.timesteps}
    model = TinyDiffusionDecoder(**kwargs).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    images, z_i, _ = embed_training_set(clip, cfg.train_size, cfg.seed, device)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
    state = TrainState(modules={"model": model}, optimizers={"model": opt}, generators={"noise": noise_gen},
                       ema=make_ema(model, cfg.ema_decay), ema_of="model")

    def make_step(start: int):
        batches = random_batches(images, z_i, cfg.batch_size, seed=cfg.seed, start_step=start)
        return loss_step(model, opt, batches,
                         lambda batch: model.loss(*batch, drop=cfg.cond_drop, generator=noise_gen))

    fit(cfg, state, make_step, ctx)
    decoder = copy.deepcopy(state.final_model()).cpu().eval()
    measured = {}
    if ctx.evaluate:
        measured = measure_decoder(decoder, clip.cpu(), ctx.require(cfg.prior), load_probe_or_none(),
                                   n=cfg.eval_samples)
    return TrainResult(model=decoder, kwargs=kwargs, steps=cfg.steps, wall_time_s=state.wall_time_s,
                       history=state.history, metrics=measured)


def remeasure_prior(name: str, entry: dict, load, n: int | None = None) -> dict:
    """The manifest metrics of a shipped prior, measured again with the CLIP it was trained on."""
    return measure_prior(load(name), load(entry["config"]["clip"]), n=n or entry["metrics"].get("n", 500))


def remeasure_decoder(name: str, entry: dict, load, n: int | None = None) -> dict:
    """The manifest metrics of a shipped decoder (GAN or diffusion), measured again through its chain."""
    cfg = entry["config"]
    return measure_decoder(load(name), load(cfg["clip"]), load(cfg["prior"]), load_probe_or_none(),
                           n=n or entry["metrics"].get("n", 500))


for _family in (
        registry.Family(name="prior", chapter="book/clip_unclip.ipynb", config_class=PriorConfig, trainer=train_prior,
                        model_classes=(DiffusionPrior,), remeasure=remeasure_prior, generator=False),
        registry.Family(name="decoder", chapter="book/clip_unclip.ipynb", config_class=DecoderConfig,
                        trainer=train_decoder, model_classes=(EmbeddingConditionedGenerator,),
                        remeasure=remeasure_decoder),
        registry.Family(name="diffusion-decoder", chapter="book/clip_unclip.ipynb",
                        config_class=DiffusionDecoderConfig, trainer=train_diffusion_decoder,
                        model_classes=(TinyDiffusionDecoder,), remeasure=remeasure_decoder)):
    registry.register(_family)
del _family
