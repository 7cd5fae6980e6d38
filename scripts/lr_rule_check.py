"""The check of the batch-size rule that a CPU can make: the CPU recipe at batch 64 against batch 256 with the
square-root rule and its warm-up (the -gpu recipe's change), and with the linear rule (twice the square root's rates),
for the same number of images seen.

    python scripts/lr_rule_check.py [--images 96000] [--threads 1]

Writes condgan_lib/artifacts/lr_rule/batch64.json, batch256.json and batch256_linear.json: each run's command,
config, wall time and history (condition accuracy of the EMA generator every 12,000 images, by the judge each names
by its sha256). The training chapter plots them.
"""
import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import torch

from condgan_lib import artifacts, metrics
from condgan_lib.fileio import atomic_write_text
from condgan_lib.runs import run_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=96_000, help="images seen by each run")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out_dir = artifacts.ROOT / "lr_rule"
    command = "python scripts/lr_rule_check.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    for name, batch, extra in (("batch64", 64, {}), ("batch256", 256, {"lr_scaling": "sqrt", "lr_warmup_steps": 100}),
                               ("batch256_linear", 256, {"lr_scaling": "linear", "lr_warmup_steps": 100})):
        steps = args.images // batch
        every = 12_000 // batch
        with tempfile.TemporaryDirectory() as tmp:
            run = run_config("mnist-projection", device="cpu", out=tmp, progress=False, evaluate=False, steps=steps,
                             batch_size=batch, eval_every=every, eval_samples=1000, log_every=every,
                             ckpt_every=steps, **extra)
        record = {"command": command, "images": args.images, "config": run.entry["config"],
                  "wall_time_s": run.entry["wall_time_s"], "hardware": run.entry["hardware"],
                  "history": run.history, "judge_sha256": metrics.judge_sha256("mnist")}
        atomic_write_text(json.dumps(record, indent=1), out_dir / f"{name}.json")
        last = [h for h in run.history if "condition_accuracy" in h][-1]
        print(f"{name}: {steps} steps, {run.entry['wall_time_s']:.0f} s, condition accuracy "
              f"{last['condition_accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
