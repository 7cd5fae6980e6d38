"""The training command that produced every shipped checkpoint (chapter "Training for real").

    python -m condgan_lib.train --config mnist-projection [--device auto|cuda|cpu] [--steps N] [--out DIR]
                                [--resume] [--seed S] [--amp bf16] [--compile] [--ship] [--set FIELD=VALUE ...]
    torchrun --standalone --nproc_per_node N -m condgan_lib.train --config NAME [same options]

The command only parses its options: ``runs.run_config`` trains the config with its family's trainer (``registry``)
on the training engine (``engine.fit``). A run folder ends with ``history.json`` and ``NAME.pt`` beside its manifest
entry; GAN runs add ``samples.png`` and ``curves.png``. Mistakes in the options, the data or the run folder end with
one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys

import torch

from . import distributed
from .configs import CONFIGS
from .data import DataUnavailableError
from .engine import NonFiniteLossError
from .fileio import resolve_device
from .hub import CheckpointError
from .runs import run_config

# the errors a user can cause and fix; anything else is a bug and keeps its traceback
USER_ERRORS = (KeyError, ValueError, NonFiniteLossError, DataUnavailableError, CheckpointError, OSError)


def parse_overrides(name: str, pairs: list[str]) -> dict:
    """``["ch=16", "betas=0.5,0.999"]`` -> typed overrides for config ``name``; clear errors for bad pairs."""
    if name not in CONFIGS:
        raise KeyError(f"unknown config {name!r}; known configs: {', '.join(sorted(CONFIGS))}")
    fields = {f.name: type(getattr(CONFIGS[name], f.name)) for f in dataclasses.fields(CONFIGS[name])}
    fields.pop("name")
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


def build_parser(config: str | None) -> argparse.ArgumentParser:
    """The command's options; ``--amp``, ``--compile`` and ``--diffaugment`` only where ``config`` has the field."""
    parser = argparse.ArgumentParser(prog="python -m condgan_lib.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, metavar="NAME", help=f"one of: {', '.join(sorted(CONFIGS))}")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--steps", type=int, help="override the number of steps")
    parser.add_argument("--batch-size", type=int, help="override the batch size")
    parser.add_argument("--seed", type=int, help="override the seed")
    fields = {f.name for f in dataclasses.fields(CONFIGS[config])} if config in CONFIGS else None
    if fields is None or "amp" in fields:
        parser.add_argument("--amp", choices=["none", "bf16", "fp16"], help="autocast precision")
    if fields is None or "compile" in fields:
        parser.add_argument("--compile", action="store_true", help="torch.compile the networks")
    if fields is None or "diffaugment" in fields:
        parser.add_argument("--diffaugment", action="store_true", help="apply DiffAugment")
    parser.add_argument("--out", help="run folder (default runs/NAME)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--ship", action="store_true", help="copy the result into condgan_lib/checkpoints")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-eval", action="store_true", help="skip the final measurement (metrics stay empty)")
    parser.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: its own choice)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any config field, e.g. --set ch=16 --set ckpt_every=100")
    return parser


def launcher_command(argv: list[str]) -> str:
    """The command line as a reader would type it again (``torchrun ...`` under torchrun)."""
    launcher = "python -m condgan_lib.train "
    if distributed.launched_by_torchrun():
        world, local = os.environ["WORLD_SIZE"], os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])
        nodes = int(world) // int(local)
        launcher = f"torchrun {f'--nnodes {nodes} ' if nodes > 1 else ''}--nproc_per_node {local} -m condgan_lib.train "
    return launcher + " ".join(shlex.quote(a) for a in argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config")
    args = build_parser(config.parse_known_args(argv)[0].config).parse_args(argv)
    try:
        overrides = parse_overrides(args.config, args.set)
        overrides.update({k: v for k, v in {"steps": args.steps, "batch_size": args.batch_size, "seed": args.seed,
                                            "amp": getattr(args, "amp", None)}.items() if v is not None})
        for flag in ("compile", "diffaugment"):
            if getattr(args, flag, False):
                overrides[flag] = True
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be at least 1, not {args.threads}")
            torch.set_num_threads(args.threads)
        device = resolve_device(args.device)
        if distributed.launched_by_torchrun():
            device = distributed.init_from_env(device)
        run = run_config(args.config, device=device, out=args.out, resume=args.resume,
                         progress=not args.no_progress, ship=args.ship, command=launcher_command(argv),
                         evaluate=not args.no_eval, **overrides)
    except USER_ERRORS as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
        return 2
    finally:
        distributed.shutdown()
    if run.entry is None:  # not rank 0
        return 0
    print(json.dumps({k: run.entry[k] for k in ("steps", "wall_time_s", "hardware", "metrics", "sha256")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
