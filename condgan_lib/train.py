"""The training command that produced every shipped checkpoint.

    python -m condgan_lib.train --config mnist-projection [--device auto|cuda|cpu] [--steps N] [--out DIR]
                                [--resume] [--seed S] [--amp bf16] [--compile] [--ship]
    torchrun --standalone --nproc_per_node N -m condgan_lib.train --config NAME [same options]

One GAN step (``gan_step``) is plain PyTorch: a discriminator update on real and detached fake images, then a
generator update through a fresh discriminator pass. Around it, ``train_gan`` adds what a real run needs:
device placement, autocast, channels_last, optional ``torch.compile``, generator EMA, DiffAugment, periodic
evaluation, TensorBoard, a progress bar, atomic checkpoints with ``--resume``, and a guard against NaN/inf losses.
Under ``torchrun`` the same loop runs data-parallel (``condgan_lib.distributed`` says what is synchronised); a run
folder ends with ``history.json``, ``samples.png`` and ``curves.png`` beside the model and its manifest entry.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import platform
import re
import os
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from . import clip, distributed, hub, losses, metrics, unclip
from .classifier import train_classifier
from .configs import (ClassifierConfig, CLIPConfig, DecoderConfig, DiffusionDecoderConfig, GANConfig, PriorConfig,
                      get_config)
from .data import load_images, random_batches
from .configs import ProbeConfig, TextGANConfig
from . import text2img
from .models import (ACGANDiscriminator, ConcatDiscriminator, DCGANDiscriminator, Generator, MLPDiscriminator,
                     MLPGenerator, ProjectionDiscriminator, dcgan_init)


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped and the last good checkpoint is kept."""


# ----------------------------------------------------------------------------------------------- building blocks

def build_models(cfg: GANConfig) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """Generator, discriminator and the generator's constructor arguments (what a shipped file records)."""
    n_classes = 10 if cfg.conditional else 0
    if cfg.model == "mlp":
        g_kwargs = {"z_dim": cfg.z_dim}
        return MLPGenerator(**g_kwargs), MLPDiscriminator(), g_kwargs
    g_kwargs = {"z_dim": cfg.z_dim, "n_classes": n_classes, "ch": cfg.ch}
    G = Generator(**g_kwargs)
    D = {"dcgan": lambda: DCGANDiscriminator(ch=cfg.ch),
         "concat": lambda: ConcatDiscriminator(ch=cfg.ch),
         "acgan": lambda: ACGANDiscriminator(ch=cfg.ch),
         "projection": lambda: ProjectionDiscriminator(ch=cfg.ch, sn_embedding=cfg.sn_embedding)}[cfg.model]()
    G.apply(dcgan_init)
    if cfg.model != "projection":  # spectral norm has its own scale; DCGAN init is for the others
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


def ema_avg_fn(decay: float):
    """EMA update with warm-up: the weight of the newest generator is ``max(1 - decay, 1 / (n + 1))``.

    Early in training a plain EMA would still be mostly the random initialisation; the warm-up makes it the
    running mean of the first ``1 / (1 - decay)`` generators, then a true exponential average.
    """
    def avg(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        weight = torch.clamp(1.0 / (num_averaged + 1), min=1.0 - decay)
        return averaged + (current - averaged) * weight.to(averaged.dtype)
    return avg


def d_loss_fn(cfg: GANConfig, D, real, fake, labels, fake_labels) -> torch.Tensor:
    """The discriminator's loss for one batch of real and (detached) fake images."""
    if cfg.model == "acgan":
        (r, r_cls), (f, f_cls) = D(real), D(fake)
        class_loss = F.cross_entropy(r_cls, labels)
        if cfg.acgan_classify_fakes:  # Odena et al.'s original term; it lets D learn G's labels instead of digits
            class_loss = class_loss + F.cross_entropy(f_cls, fake_labels)
        return losses.bce_d_loss(r, f) + cfg.acgan_weight * class_loss
    return losses.D_LOSSES[cfg.loss](D(real, labels), D(fake, fake_labels))


def g_loss_fn(cfg: GANConfig, D, fake, fake_labels) -> torch.Tensor:
    """The generator's loss through a fresh discriminator pass on its images."""
    if cfg.model == "acgan":
        f, f_cls = D(fake)
        return losses.nonsaturating_g_loss(f) + cfg.acgan_weight * F.cross_entropy(f_cls, fake_labels)
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
    opt_d.zero_grad(set_to_none=True)
    _backward_step(d_loss, opt_d, scaler)
    with autocast(), d_no_sync():
        g_loss = g_loss_fn(cfg, D, aug(fake), fake_labels)
    opt_g.zero_grad(set_to_none=True)
    _backward_step(g_loss, opt_g, scaler)
    return d_loss.detach(), g_loss.detach()


def _backward_step(loss, opt, scaler):
    if scaler is None:
        loss.backward()
        opt.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; a clear error for an unavailable CUDA request."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but CUDA is not available; use --device cpu or auto")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, not {device!r}")
    return device


def hardware(device: str) -> str:
    """A one-line description of where a run happened (with the number of processes of a data-parallel run)."""
    if device.startswith("cuda"):
        one = f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    else:
        one = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
    n = distributed.world_size()
    return one if n == 1 else f"{n} processes ({distributed.backend()}), each: {one}"


# -------------------------------------------------------------------------------------------------- checkpoints

CKPT_PATTERN = re.compile(r"step_(\d+)\.pt$")


def checkpoints_in(out: Path) -> list[Path]:
    """Training checkpoints in ``out/checkpoints``, newest first."""
    files = [p for p in (out / "checkpoints").glob("step_*.pt") if CKPT_PATTERN.search(p.name)]
    return sorted(files, key=lambda p: int(CKPT_PATTERN.search(p.name).group(1)), reverse=True)


def load_latest_checkpoint(out: Path) -> dict | None:
    """The newest readable checkpoint; a corrupt one is reported and skipped in favour of the one before."""
    for path in checkpoints_in(out):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            print(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); trying the previous one",
                  file=sys.stderr)
    return None


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


# ----------------------------------------------------------------------------------------------------- the loop

def train_gan(cfg: GANConfig, device: str = "auto", out: str | Path | None = None, resume: bool = False,
              progress: bool = True, keep_checkpoints: int = 3, nan_at_step: int | None = None) -> dict:
    """Train ``cfg``; returns ``{"model": EMA (or plain) generator, "g_kwargs", "steps", "wall_time_s", "history"}``.

    In a ``torchrun`` process group the loop is data-parallel: ``cfg.batch_size`` is the global batch, each rank
    trains on its slice of it, and rank 0 alone keeps the EMA, logs, evaluates and saves (``condgan_lib.distributed``).
    ``nan_at_step`` poisons the discriminator loss at that step: it exists to test the NaN guard.
    """
    cfg.validate()
    device = resolve_device(device)
    out = Path(out or Path("runs") / cfg.name)
    n_ranks, main = distributed.world_size(), distributed.is_main()
    per_rank = distributed.check_global_batch(cfg.batch_size)
    torch.manual_seed(cfg.seed)
    G, D, g_kwargs = build_models(cfg)
    if n_ranks > 1:  # batch norm over the global batch: N ranks compute what one process would
        G, D = distributed.sync_batch_norm(G, device), distributed.sync_batch_norm(D, device)
    G, D = G.to(device), D.to(device)
    if cfg.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    scale = cfg.batch_size / 64 if cfg.lr_scale_with_batch else 1.0
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g * scale, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d * scale, betas=cfg.betas)
    ema = AveragedModel(G, avg_fn=ema_avg_fn(cfg.ema_decay), use_buffers=True) if cfg.ema_decay and main else None

    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
    autocast = (lambda: torch.autocast(device.split(":")[0], dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    scaler = torch.amp.GradScaler(device.split(":")[0]) if cfg.amp == "fp16" else None
    step_G, step_D = distributed.wrap(G, device), distributed.wrap(D, device)  # G, D themselves in one process
    d_no_sync = step_D.no_sync if n_ranks > 1 else contextlib.nullcontext
    if cfg.compile:
        step_G, step_D = torch.compile(step_G), torch.compile(step_D)
    if n_ranks > 1:
        print(f"rank {distributed.rank()}/{n_ranks} ({distributed.backend()}, {device}): global batch "
              f"{cfg.batch_size} = {n_ranks} x {per_rank}; lr_g {cfg.lr_g * scale:g}, lr_d {cfg.lr_d * scale:g}",
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

    start, history, wall_before = 0, [], 0.0
    if resume:
        state = distributed.broadcast_object(load_latest_checkpoint(out) if main else None)
        if state is None:
            if main:
                print(f"--resume: no checkpoint in {out / 'checkpoints'}; starting from step 0", file=sys.stderr)
        else:
            if _recipe(state["config"]) != _recipe(_jsonable(cfg.to_dict())):
                raise ValueError(f"--resume: the checkpoint in {out} was written with a different config; "
                                 f"use the same options or another --out")
            G.load_state_dict(state["G"]), D.load_state_dict(state["D"])
            opt_g.load_state_dict(state["opt_g"]), opt_d.load_state_dict(state["opt_d"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
            for gen, key in ((noise_gen, "noise"), (aug_gen, "aug")):
                gen.set_state(state["generators"][key])
            torch.set_rng_state(state["rng"]["torch"])
            start, history, wall_before = state["step"], json.loads(state["history"]), state["wall_time_s"]
            if main:
                print(f"resumed {cfg.name} from step {start}")
    # the batch at each step is a function of (seed, step), so a resumed run sees the same batches
    batches = random_batches(images, labels_all, cfg.batch_size, seed=cfg.seed, start_step=start)
    rows = (distributed.rank() * per_rank, cfg.batch_size) if n_ranks > 1 else None
    augment = (lambda t: diff_augment(t, aug_gen, rows)) if cfg.diffaugment else None

    writer = _summary_writer(out / "tb") if main else _NoWriter()
    eval_classifier = _maybe_classifier(cfg) if cfg.conditional and main else None
    G.train(), D.train()
    t0, seen = time.perf_counter(), 0
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=cfg.name, disable=not (progress and main))
    for step in bar:
        # every rank draws the same global batch, noise and labels, and keeps its own rows
        real, labels = next(batches)
        z = torch.randn(cfg.batch_size, cfg.z_dim, generator=noise_gen).to(device)
        fake_labels = torch.randint(0, 10, (cfg.batch_size,), generator=noise_gen).to(device)
        if n_ranks > 1:
            real, labels, z, fake_labels = (distributed.shard(t) for t in (real, labels, z, fake_labels))
        if cfg.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        d_loss, g_loss = gan_step(cfg, step_G, step_D, opt_g, opt_d, real, labels, z, fake_labels, autocast, scaler,
                                  augment, d_no_sync)
        if nan_at_step is not None and step == nan_at_step:
            d_loss = d_loss * float("nan")
        if n_ranks > 1:  # the global batch's losses, the same on every rank (so every rank stops on a NaN)
            d_loss, g_loss = distributed.mean_over_ranks(torch.stack([d_loss.float(), g_loss.float()]))
        if ema is not None:
            ema.update_parameters(G)
        seen += cfg.batch_size
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            d_val, g_val = d_loss.item(), g_loss.item()
            if not (math.isfinite(d_val) and math.isfinite(g_val)):
                raise NonFiniteLossError(
                    f"{cfg.name}: non-finite loss at step {step + 1} (D {d_val}, G {g_val}); training stopped. "
                    f"The last good checkpoint in {out / 'checkpoints'} is intact: lower the learning rates or "
                    f"disable mixed precision, then --resume.")
            rate = seen / (time.perf_counter() - t0)
            history.append({"step": step + 1, "d_loss": round(d_val, 4), "g_loss": round(g_val, 4)})
            bar.set_postfix(D=f"{d_val:.3f}", G=f"{g_val:.3f}", img_s=f"{rate:.0f}")
            writer.add_scalar("loss/D", d_val, step + 1)
            writer.add_scalar("loss/G", g_val, step + 1)
            writer.add_scalar("images_per_s", rate, step + 1)
        elif not (torch.isfinite(d_loss) and torch.isfinite(g_loss)):
            raise NonFiniteLossError(f"{cfg.name}: non-finite loss at step {step + 1}; training stopped. The last good "
                                     f"checkpoint in {out / 'checkpoints'} is intact.")
        if eval_classifier is not None and (step + 1) % cfg.eval_every == 0:
            acc = _quick_condition_accuracy(ema.module if ema is not None else G, eval_classifier, cfg)
            history[-1]["condition_accuracy"] = round(acc, 4)
            writer.add_scalar("eval/condition_accuracy", acc, step + 1)
            writer.add_image("samples", _sample_grid(ema.module if ema is not None else G, cfg), step + 1)
        if main and ((step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps):
            _save_training_checkpoint(out, cfg, step + 1, G, D, opt_g, opt_d, ema, history,
                                      wall_before + time.perf_counter() - t0, noise_gen, aug_gen,
                                      keep_checkpoints)
    bar.close()
    writer.close()
    distributed.barrier()
    final = (ema.module if ema is not None else G).float().eval()
    if cfg.channels_last:
        final = final.to(memory_format=torch.contiguous_format)
    raw = G.float().eval().to(memory_format=torch.contiguous_format).cpu()
    return {"model": final.cpu(), "raw_model": raw, "g_kwargs": g_kwargs, "steps": cfg.steps,
            "wall_time_s": round(wall_before + time.perf_counter() - t0, 1), "history": history, "device": device}


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d))


RESUMABLE_CHANGES = ("steps", "log_every", "ckpt_every", "eval_every", "eval_samples", "compile", "export_raw_generator")


def _recipe(config: dict) -> dict:
    """The part of a config a resumed run must share with the checkpoint (a run may be extended, not changed)."""
    return {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}


def _save_training_checkpoint(out, cfg, step, G, D, opt_g, opt_d, ema, history, wall, noise_gen, aug_gen, keep):
    state = {"step": step, "config": _jsonable(cfg.to_dict()), "G": G.state_dict(), "D": D.state_dict(),
             "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "ema": ema.state_dict() if ema else {},
             "history": json.dumps(history), "wall_time_s": wall, "rng": _rng_state(),
             "generators": {"noise": noise_gen.get_state(), "aug": aug_gen.get_state()}}
    hub.atomic_save(state, out / "checkpoints" / f"step_{step:07d}.pt")
    for old in checkpoints_in(out)[keep:]:
        old.unlink(missing_ok=True)


class _NoWriter:
    """What ranks other than 0 log to: nothing."""

    def add_scalar(self, *args, **kwargs) -> None:
        pass

    add_image = add_scalar
    close = add_scalar


def _summary_writer(path: Path):
    from torch.utils.tensorboard import SummaryWriter  # the real import path (not `from tensorboard import ...`)
    return SummaryWriter(str(path))


def _maybe_classifier(cfg: GANConfig):
    try:
        return hub.load_pretrained(metrics.CLASSIFIER_FOR[cfg.dataset])
    except (ValueError, hub.CheckpointError):
        return None  # no shipped classifier yet: skip evaluation during training


@torch.no_grad()
def _quick_condition_accuracy(G, classifier, cfg: GANConfig) -> float:
    was = G.training
    G.eval()
    labels = torch.arange(10).repeat_interleave(max(1, cfg.eval_samples // 10))
    acc = metrics.condition_accuracy(classifier, G.generate(labels, seed=12345).float().cpu(), labels)
    G.train(was)
    return acc


@torch.no_grad()
def _sample_grid(G, cfg: GANConfig) -> torch.Tensor:
    from torchvision.utils import make_grid
    was = G.training
    G.eval()
    imgs = G.generate(torch.arange(10).repeat_interleave(8), seed=0).float().cpu()
    G.train(was)
    return make_grid(imgs, nrow=8)


# ------------------------------------------------------------------------------------------------- the command

def _run_classifier(cfg: ClassifierConfig, device: str, out: Path, resume: bool, progress: bool,
                    evaluate: bool) -> dict:
    t0 = time.perf_counter()
    model, measured = train_classifier(cfg, device=device, progress=progress)
    return {"model": model, "kwargs": {}, "steps": cfg.epochs * (60000 // cfg.batch_size),
            "wall_time_s": round(time.perf_counter() - t0, 1), "history": [], "metrics": measured}


def _run_gan(cfg: GANConfig, device: str, out: Path, resume: bool, progress: bool, evaluate: bool) -> dict:
    result = train_gan(cfg, device=device, out=out, resume=resume, progress=progress)
    main = distributed.is_main()
    distributed.shutdown()  # training is over: what follows is rank 0's alone (torchmetrics would sync otherwise)
    if not main:
        return {**result, "kwargs": result["g_kwargs"], "metrics": {}}
    write_run_pictures(out, cfg, result["model"], result["history"], result["wall_time_s"])
    measured = metrics.evaluate_generator(result["model"], cfg.dataset) if evaluate and _has_classifier(cfg) else {}
    extra = []
    if cfg.export_raw_generator:
        raw_metrics = metrics.evaluate_generator(result["raw_model"], cfg.dataset) if measured else {}
        extra.append((f"{cfg.name}-raw", result["raw_model"], result["g_kwargs"], raw_metrics,
                      f"the generator of {cfg.name} without EMA (same run)"))
    return {"model": result["model"], "kwargs": result["g_kwargs"], "steps": result["steps"],
            "wall_time_s": result["wall_time_s"], "history": result["history"], "metrics": measured, "extra": extra}


# One trainer per kind of config. A trainer takes (cfg, device, out, resume, progress, evaluate) and returns
# {"model", "kwargs" (the model's constructor arguments), "steps", "wall_time_s", "history", "metrics"} and optionally
# "extra": [(name, model, kwargs, metrics, note)] for further models of the same run that ship beside it.
TRAINERS = {ClassifierConfig: _run_classifier, GANConfig: _run_gan}
TRAINERS.update({CLIPConfig: clip.train_clip, PriorConfig: unclip.train_prior, DecoderConfig: unclip.train_decoder,
                 DiffusionDecoderConfig: unclip.train_diffusion_decoder})
TRAINERS.update({ProbeConfig: text2img.run_probe, TextGANConfig: text2img.run_text_gan})
DISTRIBUTED_KINDS = (GANConfig,)  # kinds whose trainer runs data-parallel under torchrun (see train_gan)


def run_config(name: str, device: str = "auto", out: str | Path | None = None, resume: bool = False,
               progress: bool = True, ship: bool = False, command: str | None = None, evaluate: bool = True,
               **overrides) -> dict:
    """Train the named config (any kind in ``TRAINERS``), measure it, and optionally ship it into the package."""
    cfg = get_config(name, **overrides)
    device = resolve_device(device)
    if distributed.world_size() > 1 and type(cfg) not in DISTRIBUTED_KINDS:
        raise ValueError(f"config {name!r} ({type(cfg).__name__}) trains in one process; run it without torchrun")
    out = Path(out or Path("runs") / name)
    out.mkdir(parents=True, exist_ok=True)
    # read before training: a trainer leaves the process group, and the source may change during a long run
    main, where, commit = distributed.is_main(), hardware(device), git_commit()
    result = TRAINERS[type(cfg)](cfg, device, out, resume, progress, evaluate)
    model, history = result["model"], result["history"]
    if not main:  # rank 0 writes the run's files
        return {"model": model, "entry": None, "history": history}
    entry = {"file": f"{name}.pt", "kind": type(model).__name__,
             "command": command or f"python -m condgan_lib.train --config {name}",
             "config": _jsonable(cfg.to_dict()), "steps": result["steps"], "wall_time_s": result["wall_time_s"],
             "hardware": where, "metrics": result["metrics"],
             "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "commit": commit}
    (out / "history.json").write_text(json.dumps(history, indent=1))
    exports = [(name, model, result["kwargs"], entry)]
    for extra_name, extra_model, extra_kwargs, extra_metrics, note in result.get("extra", []):
        exports.append((extra_name, extra_model, extra_kwargs,
                        {**entry, "kind": type(extra_model).__name__, "metrics": extra_metrics, "note": note}))
    for export_name, export_model, export_kwargs, export_entry in exports:
        path = out / f"{export_name}.pt"
        hub.atomic_save(hub.model_payload(export_model, export_kwargs, export_name), path)
        export_entry["file"] = path.name
        export_entry["sha256"] = ship_checkpoint(path, export_name, export_entry) if ship else hub.sha256_of(path)
        (out / f"{export_name}.manifest_entry.json").write_text(json.dumps(export_entry, indent=2))
    return {"model": model, "entry": entry, "history": history}


def git_commit() -> str | None:
    """The source's git commit (``-dirty`` when files differ from it), or ``None`` outside a git checkout."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], capture_output=True,
                              text=True, timeout=10, cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


@torch.no_grad()
def write_run_pictures(out: Path, cfg: GANConfig, G, history: list[dict], wall_time_s: float) -> None:
    """``samples.png`` (one row per class, or 80 samples) and ``curves.png`` (losses, condition accuracy) in ``out``."""
    from matplotlib.figure import Figure  # no pyplot: the caller's plotting backend is left alone
    from torchvision.utils import save_image
    was = G.training
    G.eval()
    imgs = G.generate(torch.arange(10).repeat_interleave(8), seed=0) if cfg.conditional else G.generate(80, seed=0)
    G.train(was)
    save_image(imgs.float().cpu(), out / "samples.png", nrow=8, padding=2, pad_value=1.0)
    accs = [(h["step"], h["condition_accuracy"]) for h in history if "condition_accuracy" in h]
    fig = Figure(figsize=(10 if accs else 5.5, 3.2))
    axes = fig.subplots(1, 2 if accs else 1, squeeze=False)[0]
    steps = [h["step"] for h in history]
    for key, label in (("d_loss", "D loss"), ("g_loss", "G loss")):
        axes[0].plot(steps, [h[key] for h in history], lw=0.8, label=label)
    axes[0].set(xlabel="step", ylabel=f"{cfg.loss} loss", title=f"{cfg.name}: losses")
    axes[0].legend()
    if accs:
        axes[1].plot(*zip(*accs), "o-")
        axes[1].set(xlabel="step", ylabel="condition accuracy", ylim=(0, 1),
                    title=f"{'EMA' if cfg.ema_decay else 'raw'} generator, {10 * max(1, cfg.eval_samples // 10)} samples")
    fig.suptitle(f"{cfg.steps} steps, global batch {cfg.batch_size}, {wall_time_s / 60:.1f} min of training",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=90)


def _has_classifier(cfg: GANConfig) -> bool:
    return metrics.CLASSIFIER_FOR[cfg.dataset] in hub.list_pretrained()


def ship_checkpoint(path: Path, name: str, entry: dict) -> str:
    """Copy a finished model into ``condgan_lib/checkpoints`` and record it in the manifest; returns its SHA-256."""
    target = hub.CHECKPOINT_DIR / f"{name}.pt"
    hub.atomic_save(torch.load(path, map_location="cpu", weights_only=True), target)
    entry["sha256"] = hub.sha256_of(target)
    hub.write_manifest_entry(name, entry)
    return entry["sha256"]


def parse_overrides(name: str, pairs: list[str]) -> dict:
    """``["ch=16", "betas=0.5,0.999"]`` -> typed overrides for config ``name``; clear errors for bad pairs."""
    from .configs import CONFIGS
    if name not in CONFIGS:
        raise KeyError(f"unknown config {name!r}; known configs: {', '.join(sorted(CONFIGS))}")
    fields = {f.name: type(getattr(CONFIGS[name], f.name)) for f in dataclasses.fields(CONFIGS[name])}
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of {sorted(fields)}")
        kind = fields[key]
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[key] = value.lower() in ("true", "1")
            elif kind is tuple:
                out[key] = tuple(float(v) for v in value.split(","))
            else:
                out[key] = kind(value)
        except ValueError:
            raise ValueError(f"--set {pair!r}: {value!r} is not a valid {kind.__name__}") from None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m condgan_lib.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a name from condgan_lib.configs.CONFIGS")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--steps", type=int, help="override the number of steps")
    parser.add_argument("--batch-size", type=int, help="override the batch size")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], help="autocast precision")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks")
    parser.add_argument("--diffaugment", action="store_true", help="apply DiffAugment")
    parser.add_argument("--out", help="run folder (default runs/NAME)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--ship", action="store_true", help="copy the result into condgan_lib/checkpoints")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-eval", action="store_true", help="skip the final measurement (metrics stay empty)")
    parser.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: its own choice)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any config field, e.g. --set ch=16 --set ckpt_every=100")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.config, args.set)
    except (KeyError, ValueError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    overrides.update({k: v for k, v in {"steps": args.steps, "batch_size": args.batch_size, "seed": args.seed,
                                        "amp": args.amp}.items() if v is not None})
    if args.compile:
        overrides["compile"] = True
    if args.diffaugment:
        overrides["diffaugment"] = True
    if args.threads:
        torch.set_num_threads(args.threads)
    launcher = "python -m condgan_lib.train "
    try:
        device = resolve_device(args.device)
        if distributed.launched_by_torchrun():
            device = distributed.init_from_env(device)
            nodes = int(os.environ["WORLD_SIZE"]) // int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
            launcher = (f"torchrun {f'--nnodes {nodes} ' if nodes > 1 else ''}"
                        f"--nproc_per_node {os.environ.get('LOCAL_WORLD_SIZE', os.environ['WORLD_SIZE'])} "
                        f"-m condgan_lib.train ")
        command = launcher + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        result = run_config(args.config, device=device, out=args.out, resume=args.resume,
                            progress=not args.no_progress, ship=args.ship, command=command,
                            evaluate=not args.no_eval, **overrides)
    except (KeyError, ValueError, NonFiniteLossError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    finally:
        distributed.shutdown()
    entry = result["entry"]
    if entry is None:  # not rank 0
        return 0
    print(json.dumps({k: entry[k] for k in ("steps", "wall_time_s", "hardware", "metrics", "sha256")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
