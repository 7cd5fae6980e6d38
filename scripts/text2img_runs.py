"""Measure finished runs of the text-to-image recipe (other seeds, other widths or rates) beside the shipped one.

    python -m condgan_lib.train --config shapes-text2img --seed 1 --no-eval --out runs/t2i-seed-1
    python scripts/text2img_runs.py runs/t2i-seed-1 --as "seed 1"

Each run folder is one made by the training command from a clean commit. Its generator is read by the shipped
probe with ``text2img.evaluate_alignment`` on 500 captions of each kind (the measurement behind the manifest's
numbers) and recorded in condgan_lib/artifacts/text2img/runs.json under the label, with the command and commit that
made it, its differences from the shipped config, the SHA-256 of the generator and of the probe that read it.
The chapter "Text to image with a conditional GAN" shows the table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from condgan_lib import artifacts, configs, hub, probe, text2img
from condgan_lib.engine import differing_fields
from condgan_lib.fileio import atomic_write_text, file_lock, sha256_of

NAME = "shapes-text2img"
PATH = artifacts.ROOT / "text2img" / "runs.json"
KEPT = ("test_shape", "test_all", "heldout_all", "two_object_objects", "two_object_swapped", "two_object_binding")


def measure(run: Path, label: str) -> dict:
    entry = run / f"{NAME}.manifest_entry.json"
    if not entry.exists():
        raise SystemExit(f"text2img_runs: {run} holds no finished run of {NAME} (no {entry.name}); let the training "
                         f"command finish, or --resume it")
    made = json.loads(entry.read_text())
    if not made.get("commit") or made["commit"].endswith("-dirty"):
        raise SystemExit(f"text2img_runs: {run} was made at {made.get('commit')}, not a clean commit; run it again "
                         f"from a clean checkout")
    shipped = configs.get_config(NAME)
    recorded = type(shipped).field_defaults() | made["config"]   # fields added since the run: their defaults
    changes = {k: recorded[k] for k in differing_fields(recorded, shipped.to_dict(), ("name",))}
    payload = torch.load(run / f"{NAME}.pt", map_location="cpu", weights_only=True)
    judge = probe.load_probe()
    measured = text2img.evaluate_alignment(hub.build_model(payload, NAME), judge, n=500)
    return {"label": label, "command": made["command"], "commit": made["commit"], "changes": changes,
            "steps": made["steps"], "sha256": sha256_of(run / f"{NAME}.pt"),
            "probe_sha256": hub.read_manifest()[probe.PROBE_NAME]["sha256"],
            "metrics": {k: measured[k] for k in KEPT}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder of the training command")
    parser.add_argument("--as", dest="label", required=True, help="the row's label in the chapter's table")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    row = measure(args.run, args.label)
    with file_lock(PATH.parent / ".runs.lock"):
        record = json.loads(PATH.read_text()) if PATH.exists() else {}
        record[args.label] = row
        atomic_write_text(json.dumps(record, indent=1) + "\n", PATH)
    print(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
