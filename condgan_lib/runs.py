"""A run of the training command: train one named config, write its folder, optionally ship it into the package.

Serves the command ``python -m condgan_lib.train`` and the notebooks' ``train_or_load``. ``run_config`` finds the
config's family in ``registry``, gives its trainer a ``RunContext`` (with ``require``, which loads or trains the
models this one depends on), and writes ``history.json``, ``NAME.pt`` and ``NAME.manifest_entry.json`` into the run
folder; with ``ship=True`` it copies the model into ``condgan_lib/checkpoints`` and records it in the manifest.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from . import distributed, hub, registry
from .configs import get_config
from .engine import RunContext, TrainResult
from .fileio import atomic_save, atomic_write_text, git_commit, hardware, resolve_device, sha256_of


@dataclass
class Run:
    """What ``run_config`` returns: the trained model, its manifest entry (None on ranks other than 0) and the
    trainer's full result."""
    model: nn.Module
    entry: dict | None
    result: TrainResult

    @property
    def history(self) -> list[dict]:
        return self.result.history


def run_config(name: str, device: str = "auto", out: str | Path | None = None, resume: bool = False,
               progress: bool = True, ship: bool = False, command: str | None = None, evaluate: bool = True,
               nan_at_step: int | None = None, **overrides) -> Run:
    """Train the named config (any family in ``registry``), measure it, and optionally ship it into the package."""
    cfg = get_config(name, **overrides)
    family = registry.family_for_config(cfg)
    device = resolve_device(device)
    if distributed.world_size() > 1 and not family.distributed:
        raise ValueError(f"config {name!r} ({family.name}) trains in one process; run it without torchrun")
    if resume and not family.resumable:
        raise ValueError(f"config {name!r} ({family.name}) trains in one short loop without checkpoints; "
                         f"run it again without --resume")
    out = Path(out or Path("runs") / name)
    out.mkdir(parents=True, exist_ok=True)
    # read before training: a trainer leaves the process group, and the source may change during a long run
    main, commit = distributed.is_main(), git_commit()
    where = hardware(device, distributed.world_size(), distributed.backend())
    ctx = RunContext(device=device, out=out, resume=resume, progress=progress, evaluate=evaluate,
                     require=lambda dependency: train_or_load(dependency, device=device, progress=progress),
                     nan_at_step=nan_at_step,
                     segment={"command": command or f"python -m condgan_lib.train --config {name}", "commit": commit,
                              "hardware": where})
    result: TrainResult = family.trainer(cfg, ctx)
    if not main:  # rank 0 writes the run's files
        return Run(result.model, None, result)
    entry = {"file": f"{name}.pt", "family": family.name, "kind": type(result.model).__name__,
             "command": command or f"python -m condgan_lib.train --config {name}",
             "config": cfg.to_dict(), "steps": result.steps, "wall_time_s": result.wall_time_s,
             "hardware": where, "metrics": result.metrics,
             "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "commit": commit}
    if len(ctx.segments) > 1:  # a run made by several invocations (--resume) records each, in order
        entry["segments"] = ctx.segments
    atomic_write_text(json.dumps(result.history, indent=1), out / "history.json")
    exports = [(name, result.model, result.kwargs, entry)]
    for extra in result.extra:
        exports.append((extra.name, extra.model, extra.kwargs,
                        {**entry, "kind": type(extra.model).__name__, "metrics": extra.metrics, "note": extra.note}))
    for export_name, model, kwargs, export_entry in exports:
        path = out / f"{export_name}.pt"
        atomic_save(hub.model_payload(model, kwargs, export_name, family.name), path)
        export_entry["file"] = path.name
        export_entry["sha256"] = ship_checkpoint(path, export_name, export_entry) if ship else sha256_of(path)
        atomic_write_text(json.dumps(export_entry, indent=2), out / f"{export_name}.manifest_entry.json")
    return Run(result.model, entry, result)


def ship_checkpoint(path: Path, name: str, entry: dict) -> str:
    """Copy a finished model into ``condgan_lib/checkpoints`` and record it in the manifest; returns its SHA-256."""
    target = hub.CHECKPOINT_DIR / f"{name}.pt"
    atomic_save(torch.load(path, map_location="cpu", weights_only=True), target)
    entry["sha256"] = sha256_of(target)
    hub.write_manifest_entry(name, entry)
    return entry["sha256"]


def train_or_load(name: str, device: str = "cpu", progress: bool = True, **overrides) -> nn.Module:
    """Load the shipped checkpoint ``name`` when present; otherwise train it with the same config (and ``overrides``)."""
    if not overrides:
        try:
            model = hub.load_pretrained(name, device=device)
            print(f"loaded shipped checkpoint {name!r}")
            return model
        except (ValueError, hub.CheckpointError) as exc:
            print(f"{exc}\ntraining {name!r} from scratch instead")
    return run_config(name, device=device, progress=progress, **overrides).model.to(device).eval()
