"""How fast can the class-conditional GAN learn its classes on 2 CPU cores? From the shipped recipe
(mnist-projection), one factor at a time and a few combinations, each trained from scratch until the EMA generator
reaches 98 % condition accuracy on 1,000 samples (the book's MNIST judge), or a time budget runs out.

    python scripts/fast_recipe_ablation.py [--only NAME ...] [--threads 2] [--budget-s 120]

Uses ``condgan_lib.bench.time_to_accuracy`` (the benchmark's own measurement: training time only, accuracy checked
every 250 steps). Writes condgan_lib/artifacts/fast_recipe/ablation.json (one entry per variant, kept when other
variants are run later); the chapter "Training for real" shows the table.
"""
import argparse
import json
import shlex
import sys

import torch

from condgan_lib import artifacts, metrics
from condgan_lib.bench import time_to_accuracy
from condgan_lib.configs import get_config
from condgan_lib.fileio import atomic_write_text, file_lock, hardware

# each variant changes the shipped recipe mnist-projection in the fields it names
VARIANTS = {
    "shipped recipe": {},
    "EMA decay 0.99": {"ema_decay": 0.99},
    "batch 32": {"batch_size": 32},
    "rates 2e-3": {"lr_g": 2e-3, "lr_d": 2e-3},
    "DiffAugment": {"diffaugment": True},
    "width 16": {"ch": 16},
    "width 16, EMA 0.99": {"ch": 16, "ema_decay": 0.99},
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=120.0, help="training seconds before a variant gives up")
    parser.add_argument("--target", type=float, default=0.98)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    path = artifacts.ROOT / "fast_recipe" / "ablation.json"
    command = "python scripts/fast_recipe_ablation.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    for name in args.only:
        changes = VARIANTS[name]
        cfg = get_config("mnist-projection", steps=6000, **changes)
        print(name, flush=True)
        result = time_to_accuracy(cfg, "cpu", args.target, args.budget_s)
        with file_lock(path.parent / ".ablation.lock"):
            record = json.loads(path.read_text()) if path.exists() else {}
            record[name] = {"command": command, "changes": {k: list(v) if isinstance(v, tuple) else v
                                                            for k, v in changes.items()},
                            "target": args.target, "budget_s": args.budget_s, "hardware": hardware("cpu"),
                            "judge_sha256": metrics.judge_sha256("mnist"),
                            **{k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}}
            atomic_write_text(json.dumps(record, indent=1), path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
