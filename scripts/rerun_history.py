"""Measure a stored training run again with the shipped judge, by training it again from its stored config.

    python scripts/rerun_history.py PATH [PATH ...] [--threads 1] [--replace]
    python scripts/rerun_history.py PATH --create CONFIG [--set FIELD=VALUE ...]   # a new record of that run

PATH is a stored run record (``condgan_lib/artifacts/ablation/*.json``: command, config, history and, for some,
metrics) or a folder holding a shipped run's ``history.json`` and ``manifest_entry.json``
(``condgan_lib/artifacts/mnist-projection``). The judge only reads the EMA generator, and training on the CPU with a
fixed seed and thread count is deterministic, so the run trained again must give the stored losses step for step
(checked; otherwise nothing is written) and, where the config is a shipped model's, the shipped file's sha256. Then
the record's condition accuracies (and metrics) become the shipped judge's, the record names that judge by its sha256
(``judge_sha256``), and its ``command`` becomes the training command that re-creates the run.

A record whose run today's code no longer reproduces (the library changed since: initialisation, data order) is
refused; with ``--replace`` it is replaced by the new run of the same recipe, losses and all, and says so
(``rerun``: the date and the reason). ``--create`` trains the named config with the training command's ``--set``
overrides and stores a new record at PATH.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from condgan_lib import hub, metrics
from condgan_lib.configs import CONFIGS, get_config
from condgan_lib.engine import differing_fields
from condgan_lib.fileio import atomic_write_text
from condgan_lib.runs import run_config
from condgan_lib.train import parse_overrides


def _value(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


def changed_fields(config: dict) -> list[str]:
    """``FIELD=VALUE`` for every field in which ``config`` differs from the named config it was made from."""
    base = CONFIGS[config["name"]].to_dict()
    # fields added since the run was made: their defaults (what the code did before); fields since removed: dropped
    recorded = type(CONFIGS[config["name"]]).field_defaults() | {k: v for k, v in config.items() if k in base}
    return [f"{k}={_value(recorded[k])}" for k in differing_fields(recorded, base, ("name",))]


def training_command(config: dict, threads: int) -> str:
    """The training command that trains ``config``: the named config with ``--set`` for every field it changes."""
    sets = [f"--set {pair}" for pair in changed_fields(config)]
    return " ".join(["python -m condgan_lib.train --config", config["name"], *sets,
                     f"--threads {threads} --no-progress"])


def losses(history: list[dict]) -> list[tuple]:
    return [(h["step"], h["d_loss"], h["g_loss"]) for h in history if "d_loss" in h]


def rerun(path: Path, threads: int, replace: bool = False, new: dict | None = None) -> None:
    """Train the run stored at ``path`` again and let the shipped judge read it; ``new``: a record to create there."""
    folder = path.is_dir()
    if new is None and not path.exists():
        raise SystemExit(f"{path} does not exist (--create CONFIG makes a new record)")
    if new is not None:
        record = new
    elif folder:
        entry = json.loads((path / "manifest_entry.json").read_text())
        record = {"config": entry["config"], "history": json.loads((path / "history.json").read_text()),
                  "metrics": entry["metrics"]}
    else:
        record = json.loads(path.read_text())
    config = record["config"]
    command = training_command(config, threads)
    overrides = parse_overrides(config["name"], changed_fields(config))
    print(f"{path}: {command}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = run_config(config["name"], device="cpu", out=tmp, progress=False, command=command, **overrides)
        history = json.loads((Path(tmp) / "history.json").read_text())
        sha = hub.sha256_of(Path(tmp) / run.entry["file"])
    stored, now = losses(record["history"]), losses(history)
    if stored and stored != now:
        first = next((a, b) for a, b in zip(stored + [None] * len(now), now + [None] * len(stored)) if a != b)
        if folder or not replace:
            raise SystemExit(f"{path}: the run trained again differs from the stored one (stored, now: {first}); "
                             f"nothing written{'' if folder else ' (--replace stores the new run instead)'}")
        record["rerun"] = (f"{run.entry['created'][:10]}: the stored run was made by an earlier version of the library "
                           f"and is not reproduced by this one (losses from step {first[0][0]}); this run replaces it")
    shipped = hub.read_manifest().get(config["name"], {})
    if shipped.get("config") == run.entry["config"] and shipped["sha256"] != sha:
        raise SystemExit(f"{path}: the run trained again is not the shipped {config['name']} (sha256 {sha[:12]}); "
                         f"nothing written")
    judge = metrics.judge_sha256(config["dataset"])
    if folder:
        atomic_write_text(json.dumps(history, indent=1) + "\n", path / "history.json")
        atomic_write_text(json.dumps(entry | {"metrics": run.entry["metrics"], "judge_sha256": judge}, indent=1)
                          + "\n", path / "manifest_entry.json")
    else:
        record.update(command=command, history=history, judge_sha256=judge)
        if "metrics" in record:
            record["metrics"] = run.entry["metrics"]
        atomic_write_text(json.dumps(record, indent=1) + "\n", path)
    print(f"{path}: {'losses reproduced at' if stored == now else 'new run,'} {len(now)} logged steps; condition accuracy "
          f"{[h['condition_accuracy'] for h in history if 'condition_accuracy' in h][-1]}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--replace", action="store_true",
                        help="store the new run where today's code does not reproduce the stored one")
    parser.add_argument("--create", metavar="CONFIG", help="train CONFIG (with --set) into a new record at PATH")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="with --create: the training command's overrides")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.create:
        if len(args.paths) != 1 or args.paths[0].exists():
            parser.error("--create makes one new record: give one PATH that does not exist yet")
        overrides = parse_overrides(args.create, args.set)
        config = get_config(args.create, **overrides).to_dict()
        rerun(args.paths[0], args.threads, new={"config": config, "history": [], "metrics": {}})
        return 0
    for path in args.paths:
        rerun(path, args.threads, args.replace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
