"""The command that measures a shipped model again (chapter "Measuring a GAN"): its metrics beside the real floor.

    python -m condgan_lib.evaluate mnist-projection [--n 2000] [--check | --record]

``--check`` re-computes the metrics recorded in the manifest and exits with status 1 when any differs by more
than ``TOLERANCE`` (the same samples, seeds and classifier are used, so on the same software they agree exactly;
the tolerance absorbs differences between CPU kernels). ``--record`` measures again and writes the result into the
manifest: the way to update recorded metrics after the metrics code changes (they are never edited by hand).
"""
from __future__ import annotations

import argparse
import json
import sys

from . import hub, metrics, registry
from .data import DataUnavailableError

TOLERANCE = {"fid": 0.5, "kid": 0.05, "precision": 0.01, "recall": 0.01, "condition_accuracy": 0.005,
             "min_class_recall": 0.02, "test_accuracy": 0.002}
# CLIP, prior and decoders of the unCLIP chapter
TOLERANCE.update({"recall_t2i@1": 0.01, "recall_t2i@5": 0.01, "recall_i2t@1": 0.01, "recall_i2t@5": 0.01,
                  "zero_shot_mean": 0.01, "temperature": 1e-4, "prior_cosine": 0.01, "text_embedding_cosine": 0.005,
                  "clip_score": 0.01, "clip_score_real": 0.005, "probe_all": 0.02})
# attribute probe and text-to-image GAN of the text-to-image chapter
TOLERANCE.update({f"{prefix}_{k}": 0.01 for prefix in ("test", "heldout", "real_test", "real_heldout")
                  for k in ("shape", "colour", "size", "position", "all")})
TOLERANCE.update({f"{prefix}_{k}": 0.01 for prefix in ("two_object", "real_two_object")
                  for k in ("objects", "swapped", "attribute_bag", "binding", "relation", "two_objects_drawn")})


def family_of(entry: dict) -> registry.Family:
    """The family of a manifest entry (entries written before families name only the model class)."""
    return registry.family_named(entry["family"]) if "family" in entry else registry.family_of_kind(entry["kind"])


def measured_names() -> list[str]:
    """Shipped checkpoints whose metrics can be measured again."""
    return [n for n, e in hub.read_manifest().items() if family_of(e).remeasure is not None]


def generator_names() -> list[str]:
    """Shipped checkpoints that are generators (not classifiers, the probe, CLIP or the prior)."""
    return [n for n in measured_names() if family_of(hub.read_manifest()[n]).generator]


def recompute(name: str, n: int | None = None) -> dict:
    """The manifest's metrics of ``name``, computed again with the manifest's sample size (or ``n``)."""
    entry = hub.read_manifest()[name]
    return family_of(entry).remeasure(name, entry, hub.load_pretrained, n)


def record(name: str, measured: dict) -> None:
    """Write freshly measured metrics of ``name`` into the manifest (atomically). Numbers that only the training run
    could measure (e.g. its last loss) are kept as the run recorded them."""
    entry = hub.read_manifest()[name]
    hub.write_manifest_entry(name, {**entry, "metrics": {**entry["metrics"], **measured}})


def compare(recorded: dict, measured: dict) -> list[str]:
    """Lines describing every metric that moved by more than its tolerance (empty when all reproduce)."""
    return [f"{k}: manifest {recorded[k]} vs now {measured.get(k)} (tolerance {tol})"
            for k, tol in TOLERANCE.items() if k in recorded and (k not in measured or abs(recorded[k] - measured[k]) > tol)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m condgan_lib.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="a shipped model with recorded metrics (see --help's list below)")
    parser.add_argument("--n", type=int, default=None, help="sample size (default: the manifest's)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail when the manifest's metrics do not reproduce")
    mode.add_argument("--record", action="store_true",
                      help="write the measured metrics into the manifest (and the file in the current format)")
    args = parser.parse_args(argv)
    try:
        return _evaluate(args)
    except (DataUnavailableError, hub.CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _evaluate(args) -> int:
    names = measured_names()
    if args.name not in names:
        print(f"error: {args.name!r} is not a shipped model with recorded metrics; choose one of {', '.join(names)}",
              file=sys.stderr)
        return 2
    entry = hub.read_manifest()[args.name]
    if args.n is not None and args.n < 1:
        raise ValueError(f"--n must be positive, not {args.n}")
    measured = recompute(args.name, args.n)
    if family_of(entry).name == "gan":
        dataset, n = entry["config"]["dataset"], measured["n"]
        floor = metrics.real_floor(dataset, n=n)
        print(f"{args.name} ({dataset}, n={n} samples vs {n} real test images)")
        print(f"{'metric':20s} {'generator':>10s} {'real floor':>10s}")
        for key in measured:
            if key != "n":
                print(f"{key:20s} {measured[key]:10.4f} {floor.get(key, float('nan')):10.4f}")
    else:
        print(json.dumps({"name": args.name, "measured": measured}, indent=1))
    if args.check:
        problems = compare(entry["metrics"], measured)
        print(json.dumps({"reproduces": not problems, "problems": problems}, indent=1))
        return 1 if problems else 0
    if args.record:
        if hub.upgrade_payload(args.name):
            print(f"rewrote {args.name} in the current checkpoint format")
        record(args.name, measured)
        print(f"recorded in {hub.CHECKPOINT_DIR / hub.MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
