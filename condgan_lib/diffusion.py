"""Chapter "Diffusion, the engine DALL-E 2 really uses" (book/diffusion.ipynb): a class-conditional diffusion model
on MNIST with classifier-free guidance, and the building blocks that the chapter "CLIP and DALL-E 2's real design,
in miniature" (book/clip_unclip.ipynb) builds unCLIP's prior and a tiny diffusion decoder on.

- ``cosine_schedule``, ``linear_schedule``: ``alpha_bar_t``, the share of the signal's variance left at step ``t``
  (Nichol & Dhariwal, 2021; Ho et al., 2020); ``signal_to_noise``: ``alpha_bar / (1 - alpha_bar)``.
- ``q_sample``: the forward process in closed form, ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``.
- ``predict_x0``, ``ddim_step``, ``ddpm_step``: one step of the deterministic DDIM sampler (Song et al., 2021) and of
  DDPM's ancestral sampler (Ho et al., 2020), pure functions of tensors.
- ``timestep_features``: sinusoidal features of the step, as Transformers encode positions.
- ``ClassConditionalUNet``: a small U-Net that predicts the noise in a 28 x 28 image from the step and the class; the
  class table has an extra row, "no label", so that one network is both the conditional and the unconditional model
  that classifier-free guidance (Ho & Salimans, 2022) combines. ``generate(labels, seed, steps, guidance)`` samples.
- ``diffusion_loss``: the training objective, noise-prediction MSE with label dropout; ``train_diffusion``: the
  family's trainer on ``engine.fit`` (``python -m condgan_lib.train --config mnist-diffusion``).
- ``TinyDiffusionDecoder``: the same recipe conditioned on a CLIP image embedding instead of a label, DALL-E 2's kind
  of decoder at toy scale; its trainer is ``unclip.train_diffusion_decoder``.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import hub, metrics, registry
from .configs import DiffusionConfig
from .data import load_images, random_batches
from .engine import RunContext, TrainResult, TrainState, fit, loss_step, make_ema
from .models import check_labels
from .repro import make_generator

DEFAULT_STEPS = 25                        # DDIM steps of ``generate``: the chapter's measured choice
DEFAULT_GUIDANCE = 1.5                    # classifier-free guidance scale of ``generate`` (1 = no guidance)
SAMPLERS = ("ddim", "ddpm")
MIN_SIGNAL = 0.06                         # samplers start at the last step where sqrt(alpha_bar) is still >= this


# --------------------------------------------------------------------------------------- schedules and the process

def cosine_schedule(timesteps: int) -> torch.Tensor:
    """``alpha_bar_t`` for ``t = 1..T`` of the cosine noise schedule (Nichol & Dhariwal, 2021)."""
    s = 0.008
    f = torch.cos((torch.arange(timesteps + 1, dtype=torch.float64) / timesteps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0).float()


def linear_schedule(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """``alpha_bar_t`` for ``t = 1..T`` of DDPM's linear schedule of ``beta_t`` (Ho et al., 2020), its end points
    scaled by ``1000 / T`` so that any ``T`` destroys the signal as fast as DDPM's 1,000 steps do."""
    scale = 1000 / timesteps
    betas = torch.linspace(beta_start * scale, beta_end * scale, timesteps, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0).float()


SCHEDULES = {"cosine": cosine_schedule, "linear": linear_schedule}


def signal_to_noise(alpha_bar: torch.Tensor) -> torch.Tensor:
    """The signal-to-noise ratio ``alpha_bar / (1 - alpha_bar)`` of ``x_t``."""
    return alpha_bar / (1 - alpha_bar)


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """A draw from ``q(x_t | x_0)``: ``sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise``, one ``t`` per row."""
    a = alpha_bar[t].view(-1, *[1] * (x0.dim() - 1))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """The clean image that ``q_sample`` would have turned into ``x_t`` with noise ``eps``: it solved for ``x_0``."""
    return (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor, alpha_bar_prev: torch.Tensor,
              clip: bool = True) -> torch.Tensor:
    """One deterministic DDIM step (Song et al., 2021, eq. 12 with sigma = 0) from ``x_t`` to an earlier step:
    predict ``x_0``, then noise it again to the earlier level with the same ``eps``. ``clip`` clips the guess of
    ``x_0`` to [-1, 1] first (the unCLIP chapter's decoder does; ``ClassConditionalUNet.generate`` does not)."""
    x0 = predict_x0(x_t, eps, alpha_bar_t)
    if clip:
        x0 = x0.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0 + (1 - alpha_bar_prev).sqrt() * eps


def ddpm_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor, alpha_bar_prev: torch.Tensor,
              noise: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """One ancestral DDPM step (Ho et al., 2020, eqs. 6-7): a draw from ``q(x_prev | x_t, x_0)`` at the predicted
    ``x_0``; ``prev`` may be several steps back (the respaced sampler of Nichol & Dhariwal, 2021)."""
    x0 = predict_x0(x_t, eps, alpha_bar_t)
    if clip:
        x0 = x0.clamp(-1, 1)
    beta = 1 - alpha_bar_t / alpha_bar_prev
    mean = (alpha_bar_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    variance = beta * (1 - alpha_bar_prev) / (1 - alpha_bar_t)
    return mean + variance.sqrt() * noise


def first_sampling_step(alpha_bar: torch.Tensor) -> int:
    """The step a sampler starts from: the last one where the signal's scale ``sqrt(alpha_bar)`` is ``MIN_SIGNAL``
    or more. Later steps are pure noise for any purpose, and there the guess of ``x_0`` from the predicted noise
    divides by ``sqrt(alpha_bar)``, up to 20,000 at the cosine schedule's last step: a tiny error becomes a huge one."""
    return int((alpha_bar.sqrt() >= MIN_SIGNAL).nonzero().max())


def sampling_timesteps(alpha_bar: torch.Tensor, steps: int) -> list[int]:
    """The ``steps`` steps a sampler visits, evenly spaced from ``first_sampling_step`` down to 0."""
    return torch.linspace(first_sampling_step(alpha_bar), 0, steps).round().long().tolist()


def timestep_features(t: torch.Tensor, timesteps: int, dim: int = 32) -> torch.Tensor:
    """Sinusoidal features of the step ``t`` (integers in ``0..T-1``), as Transformers encode positions."""
    freqs = torch.exp(-math.log(1000.0) * torch.arange(dim // 2, device=t.device) / (dim // 2))
    angles = (t.float()[:, None] / timesteps * 1000.0) * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


# ------------------------------------------------------------------------------------- the class-conditional model

def check_sampling(steps, guidance, sampler: str, max_steps: int) -> None:
    """A ValueError that names the problem, for a number of steps, a guidance scale or a sampler that cannot be used."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= max_steps:
        raise ValueError(f"steps must be an integer from 1 to {max_steps} (the model's steps a sampler visits), "
                         f"not {steps!r}")
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not guidance >= 0:
        raise ValueError(f"guidance must be a number >= 0 (0: unconditional, 1: conditional, > 1: guided), "
                         f"not {guidance!r}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, not {sampler!r}")


class ResBlock(nn.Module):
    """Two (GroupNorm, SiLU, 3x3 convolution) layers and a skip connection. The step-and-class embedding sets a scale
    and a shift of the second normalised map, per channel (adaptive group norm, Dhariwal & Nichol, 2021)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(math.gcd(8, c_in), c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.conv2 = nn.GroupNorm(math.gcd(8, c_out), c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)                # each block starts as its skip connection
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.conv2(F.silu(h)) + self.skip(x)


class ClassConditionalUNet(nn.Module):
    """``eps_theta(x_t, t, y)``: a three-level U-Net (28, 14 and 7 pixels; ``ch``, ``2 ch``, ``4 ch`` channels) that
    predicts the noise in ``x_t`` (Ho et al., 2020).

    The step's sinusoidal features go through a small MLP; the label is a row of a table with ``n_classes + 1`` rows,
    the last one meaning "no label"; their sum scales and shifts the features of every residual block. Trained with
    labels dropped to "no label" at random, the one network is both ``eps(x_t, t, y)`` and ``eps(x_t, t)``, which
    classifier-free guidance combines (Ho & Salimans, 2022).
    """

    def __init__(self, n_classes: int = 10, ch: int = 16, timesteps: int = 1000, schedule: str = "cosine",
                 emb_dim: int = 128):
        super().__init__()
        self.n_classes, self.timesteps, self.schedule = n_classes, timesteps, schedule
        self.time = nn.Sequential(nn.Linear(32, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label = nn.Embedding(n_classes + 1, emb_dim)            # row n_classes: "no label"
        c0, c1, c2 = ch, 2 * ch, 4 * ch
        self.conv_in = nn.Conv2d(1, c0, 3, 1, 1)
        self.down0 = ResBlock(c0, c0, emb_dim)                            # 28 x 28
        self.pool0 = nn.Conv2d(c0, c0, 3, 2, 1)
        self.down1 = ResBlock(c0, c1, emb_dim)                            # 14 x 14
        self.pool1 = nn.Conv2d(c1, c1, 3, 2, 1)
        self.middle = ResBlock(c1, c2, emb_dim)                           # 7 x 7
        self.up1 = ResBlock(c2 + c1, c1, emb_dim)                         # 14 x 14, joined with down1's map
        self.up0 = ResBlock(c1 + c0, c0, emb_dim)                         # 28 x 28, joined with down0's map
        self.norm_out = nn.GroupNorm(math.gcd(8, c0), c0)
        self.conv_out = nn.Conv2d(c0, 1, 3, 1, 1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.register_buffer("alpha_bar", SCHEDULES[schedule](timesteps), persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The predicted noise in images ``x`` (in [-1, 1]) at steps ``t`` for ``labels`` (``n_classes``: no label)."""
        emb = self.time(timestep_features(t, self.timesteps)) + self.label(labels)
        h0 = self.down0(self.conv_in(x), emb)
        h1 = self.down1(self.pool0(h0), emb)
        h2 = self.middle(self.pool1(h1), emb)
        u1 = self.up1(torch.cat([F.interpolate(h2, scale_factor=2.0), h1], 1), emb)
        u0 = self.up0(torch.cat([F.interpolate(u1, scale_factor=2.0), h0], 1), emb)
        return self.conv_out(F.silu(self.norm_out(u0)))

    def guided_noise(self, x: torch.Tensor, t: int, labels: torch.Tensor, guidance: float) -> torch.Tensor:
        """Classifier-free guidance: ``eps(x, none) + guidance * (eps(x, y) - eps(x, none))``, both in one batch."""
        steps = torch.full((len(x),), t, dtype=torch.long, device=x.device)
        none = torch.full_like(labels, self.n_classes)
        if guidance == 1:
            return self(x, steps, labels)
        if guidance == 0:
            return self(x, steps, none)
        eps_y, eps_none = self(torch.cat([x, x]), torch.cat([steps, steps]), torch.cat([labels, none])).chunk(2)
        return eps_none + guidance * (eps_y - eps_none)

    @torch.no_grad()
    def generate(self, labels, seed: int | None = None, steps: int | None = None,
                 guidance: float = DEFAULT_GUIDANCE, sampler: str = "ddim", chunk: int = 128) -> torch.Tensor:
        """Images ``[N, 1, 28, 28]`` in [0, 1], one per label, by ``steps`` steps of DDIM (or ancestral DDPM) with
        classifier-free guidance ``guidance`` (0: unconditional, 1: conditional); the same ``seed``, the same images.
        ``steps=None`` is ``DEFAULT_STEPS`` (or as many as a model with fewer steps has). The network runs on
        ``chunk`` images at a time (small batches are faster on a CPU)."""
        if isinstance(labels, int):
            raise ValueError("this model is class-conditional: pass a LongTensor of labels, not a count")
        labels = check_labels(labels, self.n_classes)
        max_steps = first_sampling_step(self.alpha_bar) + 1
        steps = min(DEFAULT_STEPS, max_steps) if steps is None else steps
        check_sampling(steps, guidance, sampler, max_steps)
        device = self.conv_in.weight.device
        if len(labels) == 0:
            return torch.empty(0, 1, 28, 28, device=device)
        generator = make_generator(seed)
        labels = labels.to(device)
        x = torch.randn(len(labels), 1, 28, 28, generator=generator).to(device)
        ts = sampling_timesteps(self.alpha_bar, steps)
        for i, t in enumerate(ts):
            eps = torch.cat([self.guided_noise(x[j:j + chunk], t, labels[j:j + chunk], guidance)
                             for j in range(0, len(x), chunk)])
            a = self.alpha_bar[t]
            a_prev = self.alpha_bar[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, device=device)
            if sampler == "ddim":
                x = ddim_step(x, eps, a, a_prev, clip=False)   # clipping x_0 would break DDIM's reuse of eps
            else:
                x = ddpm_step(x, eps, a, a_prev, torch.randn(x.shape, generator=generator).to(device))
        return (x.clamp(-1, 1) + 1) / 2


def diffusion_loss(model: ClassConditionalUNet, images: torch.Tensor, labels: torch.Tensor, drop: float = 0.1,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """The training objective: noise ``images`` (in [-1, 1]) to a random step, predict the noise, mean squared error;
    a share ``drop`` of the labels is replaced by "no label" so that the model also learns the unconditional case."""
    n, device = len(images), images.device
    t = torch.randint(0, model.timesteps, (n,), generator=generator).to(device)
    noise = torch.randn(images.shape, generator=generator).to(device)
    dropped = (torch.rand(n, generator=generator) < drop).to(device)
    labels = labels.masked_fill(dropped, model.n_classes)
    return F.mse_loss(model(q_sample(images, t, noise, model.alpha_bar), t, labels), noise)


# ------------------------------------------------------------------------------------------------------ the run

@torch.no_grad()
def quick_condition_accuracy(model: ClassConditionalUNet, judge: nn.Module, n: int, steps: int) -> float:
    """Condition accuracy of ``model`` on ``n`` samples (``n / 10`` per class, fixed seed, ``steps`` DDIM steps)."""
    labels = torch.arange(model.n_classes).repeat_interleave(max(1, n // model.n_classes))
    return metrics.condition_accuracy(judge, model.generate(labels, seed=12345, steps=steps).cpu(), labels)


def train_diffusion(cfg: DiffusionConfig, ctx: RunContext) -> TrainResult:
    """Train ``ClassConditionalUNet`` with ``diffusion_loss`` on the engine, with an EMA of its weights (the model
    that ships), a linear warm-up of the rate, and the EMA's condition accuracy every ``eval_every`` steps.

    Every checkpoint is kept, so that the model at any earlier step (e.g. at the GAN's training time) can be measured.
    """
    cfg.validate()
    device = ctx.device
    torch.manual_seed(cfg.seed)
    kwargs = {"n_classes": 10, "ch": cfg.ch, "timesteps": cfg.timesteps, "schedule": cfg.schedule}
    model = ClassConditionalUNet(**kwargs).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    data = load_images(cfg.dataset, "train")
    images, labels = (data.images * 2 - 1).to(device), data.labels.to(device)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
    state = TrainState(modules={"model": model}, optimizers={"model": opt}, generators={"noise": noise_gen},
                       ema=make_ema(model, cfg.ema_decay), ema_of="model")

    def make_step(start: int):
        batches = random_batches(images, labels, cfg.batch_size, seed=cfg.seed, start_step=start)
        step = loss_step(model, opt, batches,
                         lambda batch: diffusion_loss(model, *batch, drop=cfg.label_drop, generator=noise_gen))

        def warm_step(i: int) -> dict[str, torch.Tensor]:
            for group in opt.param_groups:        # the rate is a function of the step alone: resume-safe
                group["lr"] = cfg.lr * min(1.0, (i + 1) / cfg.warmup)
            return step(i)
        return warm_step

    judge = hub.load_optional(metrics.CLASSIFIER_FOR[cfg.dataset])
    evaluate = (lambda ema: {"condition_accuracy": quick_condition_accuracy(ema, judge, cfg.eval_samples,
                                                                            cfg.eval_steps),
                             "wall_time_s": state.wall_time_s}) if judge is not None else None
    fit(cfg, state, make_step, ctx, evaluate=evaluate, eval_every=cfg.eval_every, images_per_step=cfg.batch_size,
        keep=cfg.steps // cfg.ckpt_every + 1)
    final = copy.deepcopy(state.final_model()).cpu().eval()
    from torchvision.utils import save_image  # imported when a run ends: torchvision loads in 1.5 s

    save_image(final.generate(torch.arange(10).repeat_interleave(10), seed=0), Path(ctx.out) / "samples.png",
               nrow=10, padding=2, pad_value=1.0)
    judge = hub.load_optional(metrics.CLASSIFIER_FOR[cfg.dataset]) if ctx.evaluate else None
    measured = metrics.evaluate_generator(final, cfg.dataset, classifier=judge) if judge is not None else {}
    return TrainResult(model=final, kwargs=kwargs, steps=cfg.steps, wall_time_s=state.wall_time_s,
                       history=state.history, metrics=measured)


def remeasure_diffusion(name: str, entry: dict, load, n: int | None = None) -> dict:
    """The manifest metrics of a shipped diffusion model at its default steps and guidance, measured again."""
    return metrics.evaluate_generator(load(name), entry["config"]["dataset"], n=n or entry["metrics"].get("n", 2000))


# ------------------------------------------------------------------------- the decoder of the unCLIP chapter

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
            a_next = self.alpha_bar[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, device=device)
            x = ddim_step(x, eps, a, a_next)
        return (x.clamp(-1, 1) + 1) / 2


registry.register(registry.Family(
    name="diffusion", chapter="book/diffusion.ipynb", config_class=DiffusionConfig, trainer=train_diffusion,
    model_classes=(ClassConditionalUNet,), remeasure=remeasure_diffusion))
