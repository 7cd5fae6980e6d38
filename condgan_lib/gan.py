"""Chapters "From a broken snippet to DCGAN" and "Class-conditional GANs" (and "Training for real"): training a GAN.

- ``build_models``: generator and discriminator of a ``GANConfig`` (MLP, DCGAN, concatenation, AC-GAN, projection).
- ``d_loss_fn``, ``g_loss_fn`` and ``gan_step``: one GAN step in plain PyTorch, a discriminator update on real and
  detached fake images, then a generator update through a fresh discriminator pass.
- ``broken_game``: the article's game, whose generator is trained on its own pixels (its losses fall to zero).
- ``diff_augment``: DiffAugment (Zhao et al., 2020), the same random translation and cutout on real and fake images.
- ``train_gan``: the step handed to the training engine (``engine.fit``) with everything a real run adds: the data on
  the device, autocast, channels_last, optional ``torch.compile``, generator EMA, evaluation of the condition
  accuracy during training, and data parallelism under ``torchrun`` (``condgan_lib.distributed``).
- ``run_gan``: the family's trainer for ``python -m condgan_lib.train``; it also writes ``samples.png`` and
  ``curves.png`` into the run folder and measures the result (``metrics.evaluate_generator``).
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from tqdm.auto import tqdm

from . import distributed, hub, losses, metrics, registry
from .configs import GANConfig
from .data import load_images, random_batches
from .engine import (RunContext, ShippedModel, TrainResult, TrainState, autocast_for, backward_step, fit,
                     make_ema)
from .fileio import resolve_device
from .models import (ACGANDiscriminator, ConcatDiscriminator, DCGANDiscriminator, Generator, MLPDiscriminator,
                     MLPGenerator, ProjectionDiscriminator, SNGANDiscriminator, dcgan_init, latent_code)

N_CLASSES = 10                            # MNIST and Fashion-MNIST both have ten classes


def build_models(cfg: GANConfig) -> tuple[nn.Module, nn.Module, dict]:
    """Generator, discriminator and the generator's constructor arguments (what a shipped file records)."""
    n_classes = N_CLASSES if cfg.conditional else 0
    if cfg.model == "mlp":
        g_kwargs = {"z_dim": cfg.z_dim}
        return MLPGenerator(**g_kwargs), MLPDiscriminator(), g_kwargs
    g_kwargs = {"z_dim": cfg.z_dim, "n_classes": n_classes, "ch": cfg.ch}
    if cfg.latent_codes:
        g_kwargs["n_codes"] = cfg.latent_codes
    G = Generator(**g_kwargs)
    D = {"dcgan": lambda: DCGANDiscriminator(ch=cfg.ch, sn=cfg.sn_discriminator, batch_norm=not cfg.sn_discriminator),
         "sngan": lambda: SNGANDiscriminator(ch=cfg.ch, n_codes=cfg.latent_codes if cfg.info_weight else 0),
         "concat": lambda: ConcatDiscriminator(ch=cfg.ch),
         "acgan": lambda: ACGANDiscriminator(ch=cfg.ch),
         "projection": lambda: ProjectionDiscriminator(ch=cfg.ch, sn_embedding=cfg.sn_embedding)}[cfg.model]()
    G.apply(dcgan_init)
    if cfg.model not in ("projection", "sngan") and not cfg.sn_discriminator:  # spectral norm has its own scale
        D.apply(dcgan_init)
    return G, D, g_kwargs


def diff_augment(x: torch.Tensor, generator: torch.Generator | None = None,
                 shard: tuple[int, int] | None = None) -> torch.Tensor:
    """DiffAugment (Zhao et al., 2020) for grey images: random translation by up to 1/8 and a random cutout of 1/2.

    Differentiable, applied to real and fake images alike, so D cannot tell them apart by the augmentation.
    ``shard=(start, total)``: ``x`` is rows ``start..`` of a global batch of ``total``; the random draws are made
    for the whole global batch and this slice is used, so N data-parallel ranks augment as one process would.
    """
    n, _, h, w = x.shape
    dev = x.device
    start, total = shard or (0, n)
    rows = slice(start, start + n)
    shift = (torch.randint(-(h // 8), h // 8 + 1, (total, 2), generator=generator)[rows]).to(dev)
    theta = torch.zeros(n, 2, 3, device=dev, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = shift.to(x.dtype) * 2 / torch.tensor([w, h], device=dev, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=False)
    cy, cx = (torch.randint(0, h, (total,), generator=generator)[rows].to(dev),
              torch.randint(0, w, (total,), generator=generator)[rows].to(dev))
    ys, xs = torch.arange(h, device=dev), torch.arange(w, device=dev)
    inside = (((ys[None, :, None] - cy[:, None, None]).abs() < h // 4)
              & ((xs[None, None, :] - cx[:, None, None]).abs() < w // 4))
    return x.masked_fill(inside[:, None], -1.0)  # -1 is black in [-1, 1]


def d_loss_fn(cfg: GANConfig, D, real, fake, labels, fake_labels) -> torch.Tensor:
    """The discriminator's loss for one batch of real and (detached) fake images."""
    if cfg.model == "acgan":
        (r, r_cls), (f, f_cls) = D(real), D(fake)
        class_loss = F.cross_entropy(r_cls, labels)
        if cfg.acgan_classify_fakes:  # Odena et al.'s original term; it lets D learn G's labels instead of digits
            class_loss = class_loss + F.cross_entropy(f_cls, fake_labels)
        return losses.bce_d_loss(r, f) + cfg.acgan_weight * class_loss
    if cfg.info_weight:  # InfoGAN: D also learns to read the generator's latent code from its images
        (r, _), (f, f_code) = D(real), D(fake)
        return losses.D_LOSSES[cfg.loss](r, f) + cfg.info_weight * F.cross_entropy(f_code, fake_labels)
    return losses.D_LOSSES[cfg.loss](D(real, labels), D(fake, fake_labels))


def g_loss_fn(cfg: GANConfig, D, fake, fake_labels) -> torch.Tensor:
    """The generator's loss through a fresh discriminator pass on its images."""
    if cfg.model == "acgan":
        f, f_cls = D(fake)
        return losses.nonsaturating_g_loss(f) + cfg.acgan_weight * F.cross_entropy(f_cls, fake_labels)
    if cfg.info_weight:  # ... and G draws so that the code can be read back
        f, f_code = D(fake)
        return losses.G_LOSSES[cfg.loss](f) + cfg.info_weight * F.cross_entropy(f_code, fake_labels)
    return losses.G_LOSSES[cfg.loss](D(fake, fake_labels))


def gan_step(cfg: GANConfig, G, D, opt_g, opt_d, real, labels, z, fake_labels, autocast=contextlib.nullcontext,
             scaler=None, augment=None, d_no_sync=contextlib.nullcontext) -> tuple[torch.Tensor, torch.Tensor]:
    """One GAN step: update D on real vs detached fakes, then G through D. Returns the two losses (tensors).

    ``d_no_sync``: under DDP, ``D.no_sync``, so that the generator's step does not all-reduce D's gradients,
    which the next discriminator step discards.
    """
    aug = augment or (lambda t: t)
    with autocast():
        fake = G(z, fake_labels if cfg.conditional else None)
        d_loss = d_loss_fn(cfg, D, aug(real), aug(fake.detach()), labels, fake_labels)
    backward_step(d_loss, opt_d, scaler)
    with autocast(), d_no_sync():
        g_loss = g_loss_fn(cfg, D, aug(fake), fake_labels)
    backward_step(g_loss, opt_g, scaler)
    return d_loss.detach(), g_loss.detach()


def broken_game(cfg: GANConfig, steps: int = 300, record_every: int = 10, progress: bool = True):
    """The article's game, run for ``steps``: everything as in ``gan_step`` (networks, optimiser, batches, the
    discriminator's loss) but the generator's loss, which is the binary cross-entropy between its own *pixels* and 1
    and never asks the discriminator. Returns the generator and the two losses every ``record_every`` steps."""
    torch.manual_seed(cfg.seed)
    G, D, _ = build_models(cfg)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    data = load_images(cfg.dataset, "train")
    batches = random_batches(data.images * 2 - 1, data.labels, cfg.batch_size, seed=cfg.seed)
    noise = torch.Generator().manual_seed(cfg.seed + 1)
    history = []
    for step in tqdm(range(steps), desc="broken game", disable=not progress):
        real, _ = next(batches)
        fake = G(torch.randn(cfg.batch_size, cfg.z_dim, generator=noise))
        d_loss = losses.bce_d_loss(D(real), D(fake.detach()))                 # D: as in gan_step
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        pixels = (fake + 1) / 2
        g_loss = F.binary_cross_entropy(pixels, torch.ones_like(pixels))     # G: the snippet's loss on pixels
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if (step + 1) % record_every == 0:
            history.append({"step": step + 1, "d_loss": d_loss.item(), "g_loss": g_loss.item()})
    return G.eval(), history


# ------------------------------------------------------------------------------------------------------ the run

@torch.no_grad()
def quick_condition_accuracy(G: nn.Module, classifier: nn.Module, n: int) -> float:
    """Condition accuracy of ``G`` on ``n`` samples (``n / 10`` per class, fixed seed), judged by ``classifier``."""
    labels = torch.arange(N_CLASSES).repeat_interleave(max(1, n // N_CLASSES))
    return metrics.condition_accuracy(classifier, G.generate(labels, seed=12345).float().cpu(), labels)


def train_gan(cfg: GANConfig, device: str = "auto", out: str | Path | None = None, resume: bool = False,
              progress: bool = True, nan_at_step: int | None = None, ctx: RunContext | None = None) -> TrainResult:
    """Train ``cfg``; the result's model is the EMA (or plain) generator on the CPU, ``extra`` holds the generator
    without EMA when ``cfg.export_raw_generator``.

    In a ``torchrun`` process group the loop is data-parallel: ``cfg.batch_size`` is the global batch, each rank
    trains on its slice of it, and rank 0 alone keeps the EMA, logs, evaluates and saves (``condgan_lib.distributed``).
    ``nan_at_step`` poisons the losses at that step: it exists to test the engine's guard. The training command
    passes its ``ctx`` instead of the keyword arguments.
    """
    cfg.validate()
    ctx = ctx or RunContext(device=resolve_device(device), out=Path(out or Path("runs") / cfg.name), resume=resume,
                            progress=progress, nan_at_step=nan_at_step)
    device = ctx.device
    n_ranks, main = distributed.world_size(), distributed.is_main()
    per_rank = distributed.check_global_batch(cfg.batch_size)
    torch.manual_seed(cfg.seed)
    G, D, g_kwargs = build_models(cfg)
    if n_ranks > 1:  # batch norm over the global batch: N ranks compute what one process would
        G, D = distributed.sync_batch_norm(G, device), distributed.sync_batch_norm(D, device)
    G, D = G.to(device), D.to(device)
    if cfg.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g * cfg.lr_factor(0), betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d * cfg.lr_factor(0), betas=cfg.betas)
    autocast = autocast_for(device, cfg.amp)
    scaler = torch.amp.GradScaler(device.split(":")[0]) if cfg.amp == "fp16" else None
    step_G, step_D = distributed.wrap(G, device), distributed.wrap(D, device)  # G, D themselves in one process
    d_no_sync = step_D.no_sync if n_ranks > 1 else contextlib.nullcontext
    if cfg.compile:
        step_G, step_D = torch.compile(step_G), torch.compile(step_D)
    if n_ranks > 1:
        print(f"rank {distributed.rank()}/{n_ranks} ({distributed.backend()}, {device}): global batch "
              f"{cfg.batch_size} = {n_ranks} x {per_rank}; lr_g {cfg.lr_g * cfg.lr_factor(cfg.lr_warmup_steps):g}, "
              f"lr_d {cfg.lr_d * cfg.lr_factor(cfg.lr_warmup_steps):g}",
              file=sys.stderr)

    first_on_node = int(os.environ.get("LOCAL_RANK", "0")) == 0
    if not first_on_node:
        distributed.barrier()  # the first rank on each machine unpacks the dataset before the others read it
    data = load_images(cfg.dataset, "train")
    if first_on_node:
        distributed.barrier()
    images = (data.images * 2 - 1).to(device)  # the whole dataset lives on the device: no loader in the loop
    labels_all = data.labels.to(device)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 2)
    rows = (distributed.rank() * per_rank, cfg.batch_size) if n_ranks > 1 else None
    augment = (lambda t: diff_augment(t, aug_gen, rows)) if cfg.diffaugment else None
    state = TrainState(modules={"G": G, "D": D}, optimizers={"G": opt_g, "D": opt_d},
                       generators={"noise": noise_gen, "aug": aug_gen},
                       ema=make_ema(G, cfg.ema_decay) if main else None, ema_of="G")

    def make_step(start: int):
        # the batch at each step is a function of (seed, step), so a resumed run sees the same batches
        batches = random_batches(images, labels_all, cfg.batch_size, seed=cfg.seed, start_step=start)

        def step(i: int) -> dict[str, torch.Tensor]:
            G.train(), D.train()
            for opt, base in ((opt_g, cfg.lr_g), (opt_d, cfg.lr_d)):   # the batch rule, warm-up and decay
                for group in opt.param_groups:
                    group["lr"] = base * cfg.lr_factor(i)
            # every rank draws the same global batch, noise and labels, and keeps its own rows
            real, labels = next(batches)
            z = torch.randn(cfg.batch_size, cfg.z_dim, generator=noise_gen).to(device)
            fake_labels = torch.randint(0, N_CLASSES, (cfg.batch_size,), generator=noise_gen).to(device)
            if cfg.latent_codes:  # an unconditional G's "labels" are the codes its latents carry
                fake_labels = latent_code(z, cfg.latent_codes)
            if n_ranks > 1:
                real, labels, z, fake_labels = (distributed.shard(t) for t in (real, labels, z, fake_labels))
            if cfg.channels_last:
                real = real.contiguous(memory_format=torch.channels_last)
            d_loss, g_loss = gan_step(cfg, step_G, step_D, opt_g, opt_d, real, labels, z, fake_labels, autocast,
                                      scaler, augment, d_no_sync)
            if n_ranks > 1:  # the global batch's losses, the same on every rank (so every rank stops on a NaN)
                d_loss, g_loss = distributed.mean_over_ranks(torch.stack([d_loss.float(), g_loss.float()]))
            return {"d_loss": d_loss, "g_loss": g_loss}
        return step

    judge = hub.load_optional(metrics.CLASSIFIER_FOR[cfg.dataset]) if cfg.conditional and main else None
    evaluate = (lambda model: {"condition_accuracy": quick_condition_accuracy(model, judge, cfg.eval_samples)}
                ) if judge is not None else None
    fit(cfg, state, make_step, ctx, evaluate=evaluate, eval_every=cfg.eval_every, images_per_step=cfg.batch_size)
    distributed.barrier()
    final = state.final_model().float().eval().to(memory_format=torch.contiguous_format).cpu()
    extra = []
    if cfg.export_raw_generator:
        raw = G.float().eval().to(memory_format=torch.contiguous_format).cpu()
        extra.append(ShippedModel(f"{cfg.name}-raw", raw, g_kwargs, {},
                                  f"the generator of {cfg.name} without EMA (same run)"))
    return TrainResult(model=final, kwargs=g_kwargs, steps=cfg.steps, wall_time_s=state.wall_time_s,
                       history=state.history, extra=extra)


@torch.no_grad()
def write_run_pictures(out: Path, cfg: GANConfig, G: nn.Module, history: list[dict], wall_time_s: float) -> None:
    """``samples.png`` (one row per class, or 80 samples) and ``curves.png`` (losses, condition accuracy) in ``out``."""
    was = G.training
    G.eval()
    labels = torch.arange(N_CLASSES).repeat_interleave(8)
    imgs = G.generate(labels, seed=0) if cfg.conditional else G.generate(80, seed=0)
    G.train(was)
    from torchvision.utils import save_image  # imported when a run ends: torchvision loads in 1.5 s

    save_image(imgs.float().cpu(), out / "samples.png", nrow=8, padding=2, pad_value=1.0)
    accs = [(h["step"], h["condition_accuracy"]) for h in history if "condition_accuracy" in h]
    fig = Figure(figsize=(10 if accs else 5.5, 3.2))  # no pyplot: the caller's plotting backend is left alone
    axes = fig.subplots(1, 2 if accs else 1, squeeze=False)[0]
    logged = [h for h in history if "d_loss" in h]
    for key, label in (("d_loss", "D loss"), ("g_loss", "G loss")):
        axes[0].plot([h["step"] for h in logged], [h[key] for h in logged], lw=0.8, label=label)
    axes[0].set(xlabel="step", ylabel=f"{cfg.loss} loss", title=f"{cfg.name}: losses")
    axes[0].legend()
    if accs:
        axes[1].plot(*zip(*accs), "o-")
        n = N_CLASSES * max(1, cfg.eval_samples // N_CLASSES)
        axes[1].set(xlabel="step", ylabel="condition accuracy", ylim=(0, 1),
                    title=f"{'EMA' if cfg.ema_decay else 'raw'} generator, {n} samples")
    fig.suptitle(f"{cfg.steps} steps, global batch {cfg.batch_size}, {wall_time_s / 60:.1f} min of training",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=90)


def run_gan(cfg: GANConfig, ctx: RunContext) -> TrainResult:
    """The trainer of ``GANConfig`` for ``python -m condgan_lib.train``: train, draw, measure."""
    result = train_gan(cfg, ctx=ctx)
    main = distributed.is_main()
    distributed.shutdown()  # training is over: what follows is rank 0's alone (torchmetrics would sync otherwise)
    if not main:
        return result
    write_run_pictures(Path(ctx.out), cfg, result.model, result.history, result.wall_time_s)
    judge = hub.load_optional(metrics.CLASSIFIER_FOR[cfg.dataset]) if ctx.evaluate else None
    if judge is not None:
        result.metrics = metrics.evaluate_generator(result.model, cfg.dataset, classifier=judge)
        for extra in result.extra:
            extra.metrics = metrics.evaluate_generator(extra.model, cfg.dataset, classifier=judge)
    return result


def remeasure_gan(name: str, entry: dict, load, n: int | None = None) -> dict:
    """The manifest metrics of a shipped GAN, measured again (``python -m condgan_lib.evaluate NAME --check``)."""
    return metrics.evaluate_generator(load(name), entry["config"]["dataset"], n=n or entry["metrics"].get("n", 2000))


registry.register(registry.Family(
    name="gan", chapter="book/conditional.ipynb", config_class=GANConfig, trainer=run_gan,
    model_classes=(Generator, MLPGenerator), remeasure=remeasure_gan, distributed=True))
