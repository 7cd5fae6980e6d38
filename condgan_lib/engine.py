"""The one training loop behind every model the book trains with ``python -m condgan_lib.train``.

Chapter: "Training for real" (book/training.ipynb) explains what a run adds to a step; the steps themselves live in
their chapters' modules (``gan.gan_step``, ``text2img.text_gan_step``, ``unclip.decoder_step``, ``loss_step`` here for
the models trained by one loss: CLIP, the prior, the diffusion decoder).

A family hands ``fit`` its ``TrainState`` (networks, optimisers, random generators, EMA) and a function
``make_step(start) -> step(i) -> {name: loss tensor}``. ``fit`` owns everything around the step:

- **the folder**: a fresh run moves an earlier run's checkpoints aside instead of deleting its own; ``resume``
  continues from the newest readable checkpoint, refuses one written by a different recipe (naming the fields) or
  further along than ``cfg.steps``, and moves all-unreadable checkpoints aside with a message;
- **the step contract**: step ``i`` draws its batch and noise from ``(seed, i)`` or from the state's generators, so
  a resumed run sees exactly what an uninterrupted one would;
- **EMA** of one network, **history** (merged by step, so evaluation may fall between log steps), **TensorBoard**,
  **tqdm**, **evaluation** every ``eval_every`` steps, **wall time**;
- **finiteness**: every loss is checked on the device (no host sync per step), read at every log step and before every
  save, so a non-finite model is never written (``NonFiniteLossError`` with advice that can be followed);
- **checkpoints**: one writer (atomic, newest ``keep`` kept), one reader (``load_latest_checkpoint``), one resume rule
  (``BaseConfig.RESUMABLE``).
"""
from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from . import distributed
from .configs import BaseConfig
from .fileio import atomic_save

CHECKPOINT_FORMAT = 1                     # the layout of a training checkpoint written by ``save_checkpoint``
CKPT_PATTERN = re.compile(r"step_(\d+)\.pt$")

Step = Callable[[int], dict[str, torch.Tensor]]


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped and nothing non-finite was saved."""


class ResumeError(ValueError):
    """``--resume`` cannot continue the run in the folder as asked (another recipe, or already further along)."""


# ------------------------------------------------------------------------------------------ what a run returns

@dataclass
class ShippedModel:
    """A further model of the same run that ships beside the main one (e.g. the generator without EMA)."""
    name: str
    model: nn.Module
    kwargs: dict
    metrics: dict
    note: str


@dataclass
class TrainResult:
    """What every family's trainer returns to ``runs.run_config``."""
    model: nn.Module                      # the model that ships (the EMA generator where there is one), on the CPU
    kwargs: dict                          # its constructor arguments (what a shipped file records)
    steps: int
    wall_time_s: float
    history: list[dict]
    metrics: dict = field(default_factory=dict)
    extra: list[ShippedModel] = field(default_factory=list)


@dataclass
class RunContext:
    """Where and how a trainer runs, handed to it by ``runs.run_config``.

    ``require(name)`` returns another shipped model that this one depends on (the prior needs its CLIP), trained
    first when it is absent: the dependency is passed in, so no family imports the code that trains another.
    """
    device: str = "cpu"
    out: Path = Path("runs")
    resume: bool = False
    progress: bool = True
    evaluate: bool = True
    require: Callable[[str], nn.Module] | None = None
    nan_at_step: int | None = None        # poisons the losses at that step: exists to test the guard
    segment: dict = field(default_factory=dict)      # this invocation: command, commit, hardware (from runs)
    segments: list[dict] = field(default_factory=list)  # every invocation that made the run, in order (set by fit)


# -------------------------------------------------------------------------------------------- the run's state

@dataclass
class TrainState:
    """Everything a checkpoint holds; ``state_dict`` is the only place a checkpoint is composed."""
    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    generators: dict[str, torch.Generator] = field(default_factory=dict)
    ema: AveragedModel | None = None      # an average of ``modules[ema_of]``, updated after every step
    ema_of: str = "G"
    extra: dict = field(default_factory=dict)   # JSON-ready facts of the run (e.g. the text encoder's accuracy)
    step: int = 0
    history: list[dict] = field(default_factory=list)
    wall_time_s: float = 0.0

    def state_dict(self, config: dict) -> dict:
        return {"format": CHECKPOINT_FORMAT, "step": self.step, "config": config,
                "modules": {k: m.state_dict() for k, m in self.modules.items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "generators": {k: g.get_state() for k, g in self.generators.items()},
                "ema": self.ema.state_dict() if self.ema is not None else {},
                "extra": json.dumps(self.extra), "history": json.dumps(self.history),
                "wall_time_s": self.wall_time_s, "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a checkpoint; the optimisers keep the learning rates of the current config (they may change)."""
        for key, module in self.modules.items():
            module.load_state_dict(state["modules"][key])
        for key, opt in self.optimizers.items():
            rates = [group["lr"] for group in opt.param_groups]
            opt.load_state_dict(state["optimizers"][key])
            for group, lr in zip(opt.param_groups, rates):
                group["lr"] = lr
        for key, gen in self.generators.items():
            gen.set_state(state["generators"][key])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["torch_rng"])
        self.extra = json.loads(state["extra"])
        self.step, self.history = state["step"], json.loads(state["history"])
        self.wall_time_s = state["wall_time_s"]

    def final_model(self) -> nn.Module:
        """The model that ships: the EMA copy where there is one, else ``modules[ema_of]`` itself."""
        return self.ema.module if self.ema is not None else self.modules[self.ema_of]


def ema_avg_fn(decay: float):
    """EMA update with warm-up: the weight of the newest network is ``max(1 - decay, 1 / (n + 1))``.

    Early in training a plain EMA would still be mostly the random initialisation; the warm-up makes it the
    running mean of the first ``1 / (1 - decay)`` networks, then a true exponential average.
    """
    def avg(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        weight = torch.clamp(1.0 / (num_averaged + 1), min=1.0 - decay)
        return averaged + (current - averaged) * weight.to(averaged.dtype)
    return avg


def make_ema(module: nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``module`` with warm-up (``ema_avg_fn``), or None when ``decay`` is 0."""
    return AveragedModel(module, avg_fn=ema_avg_fn(decay), use_buffers=True) if decay else None


# --------------------------------------------------------------------------------------------- the steps' helpers

def backward_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None) -> None:
    """Zero the gradients, backpropagate ``loss`` and step ``opt`` (through the fp16 loss scaler when there is one)."""
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        opt.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()


def loss_step(model: nn.Module, opt: torch.optim.Optimizer, batches, loss_of: Callable) -> Step:
    """The step of a model trained by one loss (CLIP, the diffusion prior, the diffusion decoder):
    ``loss_of(batch)`` on the next batch, then one optimiser step."""
    def step(i: int) -> dict[str, torch.Tensor]:
        model.train()
        loss = loss_of(next(batches))
        backward_step(loss, opt)
        return {"loss": loss.detach()}
    return step


def autocast_for(device: str, amp: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of autocast contexts for ``amp`` ("none", "bf16", "fp16") on ``device``."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.split(":")[0], dtype=dtype)


# ------------------------------------------------------------------------------------------------- checkpoints

def checkpoints_in(out: str | Path) -> list[Path]:
    """Training checkpoints in ``out/checkpoints``, newest first."""
    files = [p for p in (Path(out) / "checkpoints").glob("step_*.pt") if CKPT_PATTERN.search(p.name)]
    return sorted(files, key=checkpoint_step, reverse=True)


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint file was written at, from its name."""
    return int(CKPT_PATTERN.search(path.name).group(1))


def load_latest_checkpoint(out: str | Path) -> dict | None:
    """The newest readable checkpoint; a corrupt one is reported and skipped in favour of the one before."""
    for path in checkpoints_in(out):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            print(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); trying the previous one",
                  file=sys.stderr)
            continue
        if state.get("format") != CHECKPOINT_FORMAT:
            print(f"checkpoint {path} has format {state.get('format')!r}, not {CHECKPOINT_FORMAT}; trying the "
                  f"previous one", file=sys.stderr)
            continue
        return state
    return None


def save_checkpoint(out: Path, state: TrainState, config: dict, keep: int = 3) -> Path:
    """Write ``state`` atomically as ``out/checkpoints/step_NNNNNNN.pt`` and keep only the newest ``keep``."""
    path = Path(out) / "checkpoints" / f"step_{state.step:07d}.pt"
    atomic_save(state.state_dict(config), path)
    for old in checkpoints_in(out)[keep:]:
        if old != path:
            old.unlink(missing_ok=True)
    return path


def move_aside(out: Path, reason: str) -> Path:
    """Rename ``out/checkpoints`` to the first free ``out/checkpoints.previous-N`` and say so on stderr."""
    target = next(out / f"checkpoints.previous-{i}" for i in range(1, 10_000)
                  if not (out / f"checkpoints.previous-{i}").exists())
    (out / "checkpoints").rename(target)
    print(f"{reason}; moved them to {target}", file=sys.stderr)
    return target


def differing_fields(saved: dict, current: dict, resumable: tuple[str, ...]) -> list[str]:
    """Fields (outside ``resumable``) whose values differ between a checkpoint's config and the current one."""
    keys = (set(saved) | set(current)) - set(resumable)
    return sorted(k for k in keys if saved.get(k) != current.get(k))


def _restore(cfg: BaseConfig, state: TrainState, out: Path, resume: bool, main: bool) -> None:
    """Prepare ``out`` for this run, and with ``resume`` load the newest readable checkpoint into ``state``."""
    existing = checkpoints_in(out)
    if not resume:
        if existing and main:
            move_aside(out, f"{out / 'checkpoints'} holds an earlier run (newest: step {checkpoint_step(existing[0])}); "
                            f"this run starts from step 0 (pass --resume to continue that run instead)")
        distributed.barrier()
        return
    saved = load_latest_checkpoint(out) if main else None
    if main and saved is None:
        if existing:
            move_aside(out, f"--resume: all {len(existing)} checkpoints in {out / 'checkpoints'} are unreadable; "
                            f"starting from step 0")
        else:
            print(f"--resume: no checkpoint in {out / 'checkpoints'}; starting from step 0", file=sys.stderr)
    saved = distributed.broadcast_object(saved)
    if saved is None:
        return
    config = cfg.to_dict()
    recorded = type(cfg).field_defaults() | saved["config"]    # fields added since the checkpoint: their defaults
    changed = differing_fields(recorded, config, cfg.resumable_fields())
    if changed:
        pairs = ", ".join(f"{k}: {recorded.get(k)!r} there, {config.get(k)!r} here" for k in changed)
        raise ResumeError(f"--resume: the checkpoint in {out / 'checkpoints'} (step {saved['step']}) was written by "
                          f"another recipe ({pairs}). Use the same options, or another --out; a resumed run may "
                          f"change only {', '.join(cfg.resumable_fields())}.")
    if saved["step"] > cfg.steps:
        raise ResumeError(f"--resume: the newest checkpoint in {out / 'checkpoints'} is at step {saved['step']}, "
                          f"beyond --steps {cfg.steps}; pass --steps {saved['step']} or more to continue it, or "
                          f"another --out for a shorter run")
    state.load_state_dict(saved)
    if main:
        print(f"resumed {cfg.name} from step {state.step}", file=sys.stderr)


def _nonfinite_advice(cfg: BaseConfig, out: Path, values: dict) -> str:
    """The message of a stop on a non-finite loss: what happened, what is on disk, a command that works."""
    kept = checkpoints_in(out)
    rates = [f for f in ("lr", "lr_g", "lr_d") if hasattr(cfg, f)]
    lower = " ".join(f"--set {f}={getattr(cfg, f) / 4:g}" for f in rates)
    if getattr(cfg, "amp", "none") != "none":
        lower += " --amp none"
    shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
    if kept:
        where = (f"The newest checkpoint, {kept[0]} (step {checkpoint_step(kept[0])}), was saved before the losses "
                 f"went bad. Continue from it with lower rates: --resume {lower}")
    else:
        where = f"No checkpoint had been saved yet. Start again with lower rates: {lower}"
    return f"{cfg.name}: non-finite loss by step {{step}} ({shown}); training stopped, nothing non-finite was saved. {where}"


def _record(history: list[dict], step: int, values: dict) -> None:
    """Add ``values`` to the history entry of ``step`` (appended if the newest entry is of an earlier step)."""
    if history and history[-1]["step"] == step:
        history[-1].update(values)
    else:
        history.append({"step": step, **values})


class _NoWriter:
    """What ranks other than 0 log to: nothing."""

    def add_scalar(self, *args, **kwargs) -> None:
        pass

    add_image = close = add_scalar


def summary_writer(path: str | Path) -> SummaryWriter:
    """A TensorBoard writer for ``path`` (view with ``tensorboard --logdir runs``)."""
    return SummaryWriter(str(path))


# ---------------------------------------------------------------------------------------------------- the loop

def fit(cfg: BaseConfig, state: TrainState, make_step: Callable[[int], Step], ctx: RunContext, *,
        evaluate: Callable[[nn.Module], dict] | None = None, eval_every: int | None = None, keep: int = 3,
        images_per_step: int | None = None, fresh_start: Callable[[], None] | None = None) -> TrainState:
    """Run steps ``state.step .. cfg.steps - 1`` of ``make_step(start)``, with resume, EMA, logging, evaluation and
    checkpoints (see the module docstring). ``evaluate(model)`` gets the EMA (or plain) network and returns numbers
    recorded in the history at its step; ``fresh_start()`` runs when no checkpoint was resumed (e.g. a pre-training
    whose result the checkpoints hold). Returns ``state``, whose ``step`` is then ``cfg.steps``."""
    out, main = Path(ctx.out), distributed.is_main()
    t0, wall_before = time.perf_counter(), state.wall_time_s
    _restore(cfg, state, out, ctx.resume, main)
    if state.step == 0 and fresh_start is not None:
        fresh_start()
    else:
        t0, wall_before = time.perf_counter(), state.wall_time_s
    segments = state.extra.setdefault("segments", [])
    if segments:
        segments[-1]["to_step"] = state.step   # where the previous invocation's work ends in this run
    segments.append({**ctx.segment, "from_step": state.step, "to_step": cfg.steps})
    ctx.segments = segments
    step_fn = make_step(state.step)
    config = cfg.to_dict()
    writer = summary_writer(out / "tb") if main else _NoWriter()
    finite: torch.Tensor | None = None            # all losses finite so far: a tensor on the device, read rarely
    last: dict[str, torch.Tensor] = {}
    start = state.step
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=cfg.name,
               disable=not (ctx.progress and main))
    try:
        for i in bar:
            last = step_fn(i)
            if ctx.nan_at_step == i:
                last = {k: v * float("nan") for k, v in last.items()}
            ok = torch.stack([v.float() for v in last.values()]).isfinite().all()
            finite = ok if finite is None else finite & ok
            if state.ema is not None:
                state.ema.update_parameters(state.modules[state.ema_of])
            n = i + 1
            log = n % cfg.log_every == 0 or n == cfg.steps
            save = main and (n % cfg.ckpt_every == 0 or n == cfg.steps)
            if (log or save) and not bool(finite):
                values = {k: v.item() for k, v in last.items()}
                raise NonFiniteLossError(_nonfinite_advice(cfg, out, values).format(step=n))
            state.step, state.wall_time_s = n, wall_before + time.perf_counter() - t0
            if log:
                values = {k: round(v.item(), 4) for k, v in last.items()}
                _record(state.history, n, values)
                shown = {k: f"{v:.3f}" for k, v in values.items()}
                for key, value in values.items():
                    writer.add_scalar(f"loss/{key}", value, n)
                if images_per_step:
                    rate = (n - start) * images_per_step / (time.perf_counter() - t0)
                    shown["img_s"] = f"{rate:.0f}"
                    writer.add_scalar("images_per_s", rate, n)
                bar.set_postfix(shown)
            if evaluate is not None and eval_every and n % eval_every == 0 and main:
                model = state.final_model()
                was = model.training
                measured = {k: round(v, 4) for k, v in evaluate(model.eval()).items()}
                model.train(was)
                _record(state.history, n, measured)
                for key, value in measured.items():
                    writer.add_scalar(f"eval/{key}", value, n)
            if save:
                save_checkpoint(out, state, config, keep)
    finally:
        bar.close()
        writer.close()
    state.wall_time_s = round(wall_before + time.perf_counter() - t0, 1) if cfg.steps > start else state.wall_time_s
    return state
