"""Print the metrics of a shipped generator beside the real-data floor.

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

from . import hub, metrics

TOLERANCE = {"fid": 0.5, "kid": 0.05, "precision": 0.01, "recall": 0.01, "condition_accuracy": 0.005,
             "min_class_recall": 0.02}
# CLIP, prior and decoder of the unCLIP chapter (condgan_lib.unclip.recompute_metrics measures them)
UNCLIP_KINDS = ("CLIPModel", "DiffusionPrior", "EmbeddingConditionedGenerator", "TinyDiffusionDecoder")
TOLERANCE.update({"recall_t2i@1": 0.01, "recall_t2i@5": 0.01, "recall_i2t@1": 0.01, "recall_i2t@5": 0.01,
                  "zero_shot_mean": 0.01, "temperature": 1e-4, "prior_cosine": 0.01, "text_embedding_cosine": 0.005,
                  "clip_score": 0.01, "clip_score_real": 0.005, "probe_all": 0.02})
# attribute probe and text-to-image GAN of the text-to-image chapter (condgan_lib.text2img.recompute_metrics)
TEXT2IMG_KINDS = ("AttributeProbe", "TextToImageGenerator")
TOLERANCE.update({f"{prefix}_{k}": 0.01 for prefix in ("test", "heldout", "real_test", "real_heldout")
                  for k in ("shape", "colour", "size", "position", "all")})
TOLERANCE.update({f"{prefix}_{k}": 0.01 for prefix in ("two_object", "real_two_object")
                  for k in ("objects", "swapped", "attribute_bag", "binding", "relation", "two_objects_drawn")})


def generator_names() -> list[str]:
    """Shipped checkpoints that are generators (not classifiers)."""
    return [n for n, e in hub.read_manifest().items() if e["kind"] != "DomainClassifier"]


def recompute(name: str) -> dict:
    """The manifest's metrics of generator ``name``, computed again with the manifest's sample size."""
    entry = hub.read_manifest()[name]
    if entry["kind"] in UNCLIP_KINDS:
        from .unclip import recompute_metrics
        return recompute_metrics(name, entry)
    if entry["kind"] in TEXT2IMG_KINDS:
        from .text2img import recompute_metrics
        return recompute_metrics(name, entry)
    n = entry["metrics"].get("n", 2000)
    return metrics.evaluate_generator(hub.load_pretrained(name), entry["config"]["dataset"], n=n)


def record(name: str, measured: dict) -> None:
    """Write freshly measured metrics of ``name`` into the manifest (atomically)."""
    hub.write_manifest_entry(name, {**hub.read_manifest()[name], "metrics": measured})


def compare(recorded: dict, measured: dict) -> list[str]:
    """Lines describing every metric that moved by more than its tolerance (empty when all reproduce)."""
    return [f"{k}: manifest {recorded[k]} vs now {measured.get(k)} (tolerance {tol})"
            for k, tol in TOLERANCE.items() if k in recorded and (k not in measured or abs(recorded[k] - measured[k]) > tol)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m condgan_lib.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help=f"a shipped generator: {', '.join(generator_names()) or 'none shipped'}")
    parser.add_argument("--n", type=int, default=None, help="sample size (default: the manifest's)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail when the manifest's metrics do not reproduce")
    mode.add_argument("--record", action="store_true", help="write the measured metrics into the manifest")
    args = parser.parse_args(argv)
    if args.name not in generator_names():
        print(f"error: {args.name!r} is not a shipped generator; choose one of {', '.join(generator_names())}",
              file=sys.stderr)
        return 2
    entry = hub.read_manifest()[args.name]
    if entry["kind"] in UNCLIP_KINDS + TEXT2IMG_KINDS:
        measured = recompute(args.name)
        print(json.dumps({"name": args.name, "measured": measured}, indent=1))
        problems = compare(entry["metrics"], measured)
        if args.check:
            print(json.dumps({"reproduces": not problems, "problems": problems}, indent=1))
            return 1 if problems else 0
        if args.record:
            record(args.name, measured)
        return 0
    dataset = entry["config"]["dataset"]
    n = args.n or entry["metrics"].get("n", 2000)
    measured = metrics.evaluate_generator(hub.load_pretrained(args.name), dataset, n=n)
    floor = metrics.real_floor(dataset, n=n)
    print(f"{args.name} ({dataset}, n={n} samples vs {n} real test images)")
    print(f"{'metric':20s} {'generator':>10s} {'real floor':>10s}")
    for key in measured:
        if key != "n":
            print(f"{key:20s} {measured[key]:10.4f} {floor.get(key, float('nan')):10.4f}")
    if args.check:
        problems = compare(entry["metrics"], measured)
        print(json.dumps({"reproduces": not problems, "problems": problems}, indent=1))
        return 1 if problems else 0
    if args.record:
        record(args.name, measured)
        print(f"recorded in {hub.CHECKPOINT_DIR / hub.MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
