"""Chapter "The GAN game": the GAN game in one and two dimensions: known densities, a 2-D toy GAN, and how to measure mode collapse.

- 1-D: two Gaussian mixtures with known densities, the optimal discriminator ``D*(x) = p_data / (p_data + p_g)``,
  the value function and the Jensen-Shannon divergence by quadrature, and a discriminator trained on samples to
  compare with them (Goodfellow et al., 2014, "Generative Adversarial Nets", Proposition 1 and Theorem 1).
- 2-D: a ring of Gaussians, a small MLP generator and discriminator, and a training loop that keeps snapshots of the
  samples and of the discriminator's landscape for animation.
- Mode collapse: modes covered and the fraction of high-quality samples (within 3 standard deviations of a mode),
  the measures of Metz et al. (2017), "Unrolled Generative Adversarial Networks", and Lin et al. (2018), "PacGAN";
  packing (PacGAN) as the remedy: the discriminator judges ``pack`` samples at once.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from . import losses

LOSSES = ("bce", "saturating", "hinge")


@contextlib.contextmanager
def one_thread():
    """Run tiny models on one CPU thread: faster than several (no synchronisation), and the same on every machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------------------------
# 1-D: known densities, the optimal discriminator, the value function and the JSD
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GaussianMixture1D:
    """A 1-D mixture of Gaussians whose density we know exactly and from which we can sample."""

    means: Sequence[float]
    stds: Sequence[float]
    weights: Sequence[float] | None = None

    def __post_init__(self):
        if len(self.means) < 1 or len(self.means) != len(self.stds):
            raise ValueError(f"means and stds must be non-empty and of equal length, got {len(self.means)} "
                             f"and {len(self.stds)}")
        if any(s <= 0 for s in self.stds):
            raise ValueError(f"stds must be positive, got {list(self.stds)}")
        if self.weights is not None and (len(self.weights) != len(self.means) or any(w < 0 for w in self.weights)
                                         or sum(self.weights) <= 0):
            raise ValueError(f"weights must be non-negative, one per component, got {list(self.weights)}")

    def _w(self) -> torch.Tensor:
        w = torch.ones(len(self.means)) if self.weights is None else torch.tensor(self.weights, dtype=torch.float64)
        return w.double() / w.sum()

    def pdf(self, x: torch.Tensor) -> torch.Tensor:
        """The density at each point of ``x``."""
        x = torch.as_tensor(x, dtype=torch.float64).unsqueeze(-1)
        mu = torch.tensor(self.means, dtype=torch.float64)
        sd = torch.tensor(self.stds, dtype=torch.float64)
        comp = torch.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        return (comp * self._w()).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples as an ``[n, 1]`` float tensor."""
        k = torch.multinomial(self._w().float(), n, replacement=True, generator=generator)
        mu = torch.tensor(self.means, dtype=torch.float)[k]
        sd = torch.tensor(self.stds, dtype=torch.float)[k]
        return (mu + sd * torch.randn(n, generator=generator)).unsqueeze(1)


def optimal_discriminator(p_data: torch.Tensor, p_g: torch.Tensor) -> torch.Tensor:
    """The optimal discriminator for a fixed generator: ``D*(x) = p_data(x) / (p_data(x) + p_g(x))``."""
    total = p_data + p_g
    return torch.where(total > 0, p_data / total.clamp_min(1e-300), torch.full_like(total, 0.5))


def value_function(d: torch.Tensor, p_data: torch.Tensor, p_g: torch.Tensor, x: torch.Tensor) -> float:
    """``V(D, G) = E_data[log D] + E_g[log(1 - D)]``, integrated with the trapezoid rule over the grid ``x``."""
    d = d.double().clamp(1e-300, 1.0)
    integrand = p_data.double() * torch.log(d) + p_g.double() * torch.log1p(-d.clamp(max=1 - 1e-16))
    return float(torch.trapezoid(integrand, x.double()))


def js_divergence(p: torch.Tensor, q: torch.Tensor, x: torch.Tensor) -> float:
    """Jensen-Shannon divergence (natural log) of two densities given on the grid ``x``, by the trapezoid rule."""
    p, q, x = p.double(), q.double(), x.double()
    m = (p + q) / 2

    def kl_to_m(a: torch.Tensor) -> float:
        return float(torch.trapezoid(torch.where(a > 0, a * torch.log(a / m), torch.zeros_like(a)), x))

    return (kl_to_m(p) + kl_to_m(q)) / 2


# ---------------------------------------------------------------------------------------------------------------
# 2-D data, and the models (any input dimension)
# ---------------------------------------------------------------------------------------------------------------

def ring_centers(n_modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """The ``[n_modes, 2]`` centres of a ring of Gaussians, evenly spaced on a circle."""
    if n_modes < 1:
        raise ValueError(f"n_modes must be at least 1, got {n_modes}")
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    angles = 2 * math.pi * torch.arange(n_modes, dtype=torch.float) / n_modes
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def ring_of_gaussians(n: int, n_modes: int = 8, radius: float = 2.0, std: float = 0.05,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points from an equal-weight mixture of ``n_modes`` Gaussians (std ``std``) on a circle; ``[n, 2]``."""
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    centers = ring_centers(n_modes, radius)
    k = torch.randint(n_modes, (n,), generator=generator)
    return centers[k] + std * torch.randn(n, 2, generator=generator)


class ToyGenerator(nn.Module):
    """An MLP from ``latent_dim`` standard-normal noise to points in the plane."""

    def __init__(self, latent_dim: int = 2, hidden: int = 128, out_dim: int = 2):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, out_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` samples from fixed noise (the same ``seed`` gives the same noise)."""
        z = torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))
        return self(z)


class ToyDiscriminator(nn.Module):
    """An MLP from points to one logit; with ``pack`` > 1 it judges ``pack`` points at once (PacGAN)."""

    def __init__(self, in_dim: int = 2, hidden: int = 128, pack: int = 1):
        super().__init__()
        if pack < 1:
            raise ValueError(f"pack must be at least 1, got {pack}")
        self.in_dim, self.pack = in_dim, pack
        self.net = nn.Sequential(
            nn.Linear(in_dim * pack, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for ``x`` of shape ``[N, in_dim]``; with packing, ``N`` must be a multiple of ``pack``."""
        if x.shape[0] % self.pack:
            raise ValueError(f"the batch size {x.shape[0]} is not a multiple of pack={self.pack}")
        return self.net(x.reshape(x.shape[0] // self.pack, self.in_dim * self.pack)).squeeze(1)

    @torch.no_grad()
    def prob_real(self, x: torch.Tensor) -> torch.Tensor:
        """``D(x)``, the probability that each point is real (with packing: ``pack`` copies of the point)."""
        return torch.sigmoid(self(x.repeat_interleave(self.pack, dim=0)))


# ---------------------------------------------------------------------------------------------------------------
# Training: a discriminator alone on two known 1-D densities, then the 2-D game
# ---------------------------------------------------------------------------------------------------------------

def train_discriminator_1d(data: GaussianMixture1D, fake: GaussianMixture1D, steps: int = 2000,
                           batch_size: int = 512, lr: float = 2e-3, hidden: int = 64, seed: int = 0,
                           progress: bool = True) -> ToyDiscriminator:
    """Train a discriminator with the GAN's loss on fresh samples of two fixed 1-D densities; returns it."""
    with torch.random.fork_rng(devices=[]), one_thread():
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        d = ToyDiscriminator(in_dim=1, hidden=hidden)
        opt = torch.optim.Adam(d.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in tqdm(range(steps), desc="discriminator", disable=not progress):
            loss = losses.bce_d_loss(d(data.sample(batch_size, gen)), d(fake.sample(batch_size, gen)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return d.eval()


# ---------------------------------------------------------------------------------------------------------------
# 2-D: training with snapshots
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ToyConfig:
    """Everything that defines one toy run; the same config and seed give the same run."""

    n_modes: int = 8
    radius: float = 2.0
    std: float = 0.05
    latent_dim: int = 2
    hidden: int = 128
    loss: str = "bce"           # "bce" (non-saturating), "saturating" or "hinge"
    pack: int = 1               # PacGAN packing degree; 1 = a plain discriminator
    steps: int = 2000
    batch_size: int = 256
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    d_steps: int = 1            # discriminator updates per generator update
    snapshot_every: int = 100
    seed: int = 0

    def __post_init__(self):
        if self.n_modes < 1:
            raise ValueError(f"n_modes must be at least 1, got {self.n_modes}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("pack", "steps", "batch_size", "d_steps", "snapshot_every", "latent_dim", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d", "std", "radius"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass
class Snapshot:
    """The state of a run at one step: generator samples (fixed noise) and D on a grid of the plane."""

    step: int
    samples: torch.Tensor        # [n, 2]
    landscape: torch.Tensor      # [res, res], D(x) in (0, 1)


@dataclass
class ToyRun:
    """What ``train_toy_gan`` returns: the trained models, the loss history and the snapshots."""

    config: ToyConfig
    generator: ToyGenerator
    discriminator: ToyDiscriminator
    history: dict[str, list[float]] = field(default_factory=dict)
    snapshots: list[Snapshot] = field(default_factory=list)

    @property
    def centers(self) -> torch.Tensor:
        """The centres of the data's modes."""
        return ring_centers(self.config.n_modes, self.config.radius)


def plane_grid(lim: float = 3.0, resolution: int = 64) -> torch.Tensor:
    """Points of a ``resolution`` x ``resolution`` grid over ``[-lim, lim]^2``, as ``[resolution**2, 2]`` (row = y)."""
    t = torch.linspace(-lim, lim, resolution)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1)


def train_toy_gan(config: ToyConfig = ToyConfig(), progress: bool = True, n_snapshot_samples: int = 512,
                  lim: float = 3.0, resolution: int = 48, **overrides) -> ToyRun:
    """Train the toy GAN on the ring; keyword ``overrides`` replace fields of ``config``. Deterministic per seed."""
    cfg = replace(config, **overrides)
    d_loss_fn = losses.D_LOSSES["hinge" if cfg.loss == "hinge" else "bce"]
    g_loss_fn = losses.G_LOSSES[cfg.loss]
    grid = plane_grid(lim, resolution)
    with torch.random.fork_rng(devices=[]), one_thread():
        torch.manual_seed(cfg.seed)
        data_gen = torch.Generator().manual_seed(cfg.seed + 1)
        G = ToyGenerator(cfg.latent_dim, cfg.hidden)
        D = ToyDiscriminator(2, cfg.hidden, cfg.pack)
        opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
        opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
        run = ToyRun(cfg, G, D, {"step": [], "d_loss": [], "g_loss": []})
        n = cfg.batch_size * cfg.pack            # points per batch; D sees batch_size packs of them

        def snapshot(step: int) -> None:
            run.snapshots.append(Snapshot(step, G.sample(n_snapshot_samples, seed=cfg.seed),
                                          D.prob_real(grid).reshape(resolution, resolution)))

        snapshot(0)
        for step in tqdm(range(1, cfg.steps + 1), desc=f"toy GAN ({cfg.loss}, pack={cfg.pack})",
                         disable=not progress):
            for _ in range(cfg.d_steps):          # 1. D: push D(real) up and D(fake) down; G is held fixed
                real = ring_of_gaussians(n, cfg.n_modes, cfg.radius, cfg.std, generator=data_gen)
                with torch.no_grad():
                    fake = G(torch.randn(n, cfg.latent_dim, generator=data_gen))
                d_loss = d_loss_fn(D(real), D(fake))
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            # 2. G: move the fakes where D, as it is now, says "real"; only G's optimiser steps
            g_loss = g_loss_fn(D(G(torch.randn(n, cfg.latent_dim, generator=data_gen))))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            if step % 10 == 0:
                run.history["step"].append(step)
                run.history["d_loss"].append(d_loss.item())
                run.history["g_loss"].append(g_loss.item())
            if step % cfg.snapshot_every == 0 or step == cfg.steps:
                snapshot(step)
    G.eval()
    D.eval()
    return run


def generator_grad_norm(generator: ToyGenerator, discriminator: ToyDiscriminator, loss: str, n: int = 1024,
                        seed: int = 0) -> float:
    """The norm of the gradient of generator ``loss`` ("bce", "saturating" or "hinge") w.r.t. G's parameters."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    z = torch.randn(n * discriminator.pack, generator.latent_dim, generator=torch.Generator().manual_seed(seed))
    generator.zero_grad(set_to_none=True)
    losses.G_LOSSES[loss](discriminator(generator(z))).backward()
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in generator.parameters() if p.grad is not None))
    generator.zero_grad(set_to_none=True)
    discriminator.zero_grad(set_to_none=True)
    return float(norm)


# ---------------------------------------------------------------------------------------------------------------
# Measuring mode collapse
# ---------------------------------------------------------------------------------------------------------------

def nearest_mode(samples: torch.Tensor, centers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each sample, the index of the nearest centre and the distance to it."""
    dist = torch.cdist(samples.float(), centers.float())
    d, k = dist.min(dim=1)
    return k, d


def high_quality_fraction(samples: torch.Tensor, centers: torch.Tensor, std: float, n_std: float = 3.0) -> float:
    """The fraction of samples within ``n_std`` standard deviations of the nearest mode's centre."""
    _, d = nearest_mode(samples, centers)
    return float((d <= n_std * std).float().mean())


def mode_counts(samples: torch.Tensor, centers: torch.Tensor, std: float, n_std: float = 3.0) -> torch.Tensor:
    """How many high-quality samples (within ``n_std`` std) each mode receives."""
    k, d = nearest_mode(samples, centers)
    return torch.bincount(k[d <= n_std * std], minlength=len(centers))


def modes_covered(samples: torch.Tensor, centers: torch.Tensor, std: float, n_std: float = 3.0,
                  min_count: int = 20) -> int:
    """How many modes receive at least ``min_count`` high-quality samples (within ``n_std`` std of the centre)."""
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    return int((mode_counts(samples, centers, std, n_std) >= min_count).sum())


def evaluate_toy(run: ToyRun, n: int = 2500, seed: int = 123) -> dict[str, int | float]:
    """Modes covered and high-quality fraction of ``n`` samples from a trained run's generator."""
    x = run.generator.sample(n, seed=seed)
    c, s = run.centers, run.config.std
    return {"modes_covered": modes_covered(x, c, s), "high_quality": high_quality_fraction(x, c, s)}


# ---------------------------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------------------------

def plot_snapshot(ax, snapshot: Snapshot, centers: torch.Tensor | None = None, lim: float = 3.0,
                  title: str | None = None):
    """Draw D(x) as filled contours (blue: "real"), G's samples as dots, the modes as crosses; returns the contours."""
    res = snapshot.landscape.shape[0]
    t = torch.linspace(-lim, lim, res)
    cs = ax.contourf(t, t, snapshot.landscape, levels=torch.linspace(0, 1, 11).tolist(), cmap="RdBu", alpha=0.6)
    ax.scatter(snapshot.samples[:, 0], snapshot.samples[:, 1], s=4, c="k", alpha=0.6, linewidths=0)
    if centers is not None:
        ax.scatter(centers[:, 0], centers[:, 1], marker="x", s=40, c="tab:orange", linewidths=1.5)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title if title is not None else f"step {snapshot.step}", fontsize=10)
    return cs


def animation_frames(run: ToyRun, lim: float = 3.0) -> list[Callable[[Any], None]]:
    """One drawing function per snapshot of ``run``, for ``condgan_lib.viz.animate``."""
    return [partial(plot_snapshot, snapshot=snap, centers=run.centers, lim=lim,
                    title=f"step {snap.step}   ({run.config.loss}, pack={run.config.pack})")
            for snap in run.snapshots]
