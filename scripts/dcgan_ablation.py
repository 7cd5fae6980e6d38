"""Which recipe makes the unconditional DCGAN worth showing? Each candidate is trained on MNIST (or Fashion-MNIST) with
the training command's engine and measured at a few points along the way by the book's judge of that dataset.

    python scripts/dcgan_ablation.py [--only NAME ...] [--stages 2000 5000 10000] [--threads 1] [--dataset D]
    python scripts/dcgan_ablation.py --previous [REV]   # measure the DCGANs shipped at git revision REV (default HEAD)
    python scripts/dcgan_ablation.py --from-run runs/mnist-dcgan --as NAME   # a run of the training command

For every candidate and stage it records: the share of 2,000 samples the judge classifies with probability >= 0.9,
how the samples spread over the ten classes (most frequent / least frequent), FID in the judge's feature space and
the training wall time so far; each record names the judge by its sha256 (``judge_sha256``), so that a new judge shows
which records it leaves stale. Writes condgan_lib/artifacts/dcgan/ablation.json (one entry per candidate, kept
when other candidates are run later); the chapter "From a broken snippet to DCGAN" shows the table. With
``--dataset fashion-mnist`` the candidates are trained and judged on Fashion-MNIST instead, into
ablation_fashion-mnist.json. ``--previous`` writes condgan_lib/artifacts/dcgan/previous.json instead: the manifest
entries of mnist-dcgan and fashion-dcgan as shipped at REV (read from git, so that a replaced file can be measured
again by a new judge), their metrics measured again and the same measures of their samples, so that the chapter can
show what a new recipe changed.
``--from-run`` measures the generator that ``python -m condgan_lib.train --config mnist-dcgan ...`` left in a run
folder (for example a shipped run continued with ``--resume --steps``) and records it as a stage of candidate NAME,
with the training command that made it.
"""
import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from condgan_lib import artifacts, hub, metrics
from condgan_lib.configs import get_config
from condgan_lib.engine import differing_fields
from condgan_lib.fileio import atomic_write_text, file_lock
from condgan_lib.runs import run_config

# each candidate changes DCGAN's own recipe (the config mnist-dcgan-paper) in the fields it names
_CONDITIONAL_RATES = {"lr_g": 3e-3, "lr_d": 3e-3, "betas": (0.0, 0.9), "ema_decay": 0.995}
# the projection discriminator's network minus its class term (models.SNGANDiscriminator: a third convolution and
# global sum pooling) with the hinge loss, at the conditional recipe's rates
_SNGAN = {"model": "sngan", "loss": "hinge", **_CONDITIONAL_RATES}
CANDIDATES = {
    "dcgan-paper": {},  # Radford et al.: Adam(2e-4, 0.5, 0.999) for both networks, EMA 0.999
    "conditional-recipe": _CONDITIONAL_RATES,
    # SNGAN's discriminator (spectral norm, no batch norm) and hinge loss, at the conditional recipe's rates
    "spectral-norm-hinge": {"sn_discriminator": True, "loss": "hinge", **_CONDITIONAL_RATES},
    "sngan-discriminator": _SNGAN,
    # the same, with both rates falling linearly to 0 over the second half of a 20,000-step run or over all of it (the
    # decay depends on the run's length: measure these at --stages 20000 only)
    "sngan-decay-second-half": {**_SNGAN, "lr_decay_start": 10000},
    "sngan-decay-whole-run": {**_SNGAN, "lr_decay_start": 1},
    "sngan-discriminator-ch64": {**_SNGAN, "ch": 64},  # twice the width of both networks
    "sngan-batch128": {**_SNGAN, "batch_size": 128},  # twice the batch at the same rates
    # an unconditional G whose latent space falls into ten regions (models.latent_code), without or with InfoGAN's
    # term that makes D read the code back from the image (Chen et al., 2016); no label is ever used
    "sngan-latent-code": {**_SNGAN, "latent_codes": 10},
    "sngan-infogan-code": {**_SNGAN, "latent_codes": 10, "info_weight": 1.0},
}


RUN_ONLY = ("log_every", "ckpt_every", "eval_every", "eval_samples")  # how a run reports, not what it trains


def _listed(changes: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()}


def measure(generator, judge, n: int = 2000, dataset: str = "mnist") -> dict:
    fake, _ = metrics.sample_generator(generator.eval(), n, seed=0)
    real, real_labels, _, _ = metrics.reference_sets(dataset, n)
    scores = metrics.score_images(judge, real, real_labels, fake, None)
    return {**metrics.judged_classes(judge, fake), "fid": scores["fid"], "precision": scores["precision"],
            "recall": scores["recall"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CANDIDATES), default=sorted(CANDIDATES))
    parser.add_argument("--stages", nargs="+", type=int, default=[2000, 5000, 10000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--previous", nargs="?", const="HEAD", metavar="REV",
                        help="measure the DCGANs shipped at git revision REV (default HEAD; see above)")
    parser.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default="mnist",
                        help="train and judge the candidates on this dataset (fashion-mnist: ablation_fashion-mnist.json)")
    parser.add_argument("--from-run", metavar="DIR", help="measure the generator in a training command's run folder")
    parser.add_argument("--as", dest="candidate", choices=sorted(CANDIDATES), help="the candidate --from-run measures")
    args = parser.parse_args(argv)
    if args.from_run and not args.candidate:
        parser.error("--from-run needs --as NAME: the candidate whose recipe that run trained")
    torch.set_num_threads(args.threads)
    if args.previous:
        return record_previous(args.previous)
    if args.from_run and args.dataset != "mnist":
        parser.error("--from-run measures MNIST runs only")
    judge = hub.load_pretrained(metrics.CLASSIFIER_FOR[args.dataset])
    path = artifacts.ROOT / "dcgan" / ("ablation.json" if args.dataset == "mnist" else f"ablation_{args.dataset}.json")
    command = "python scripts/dcgan_ablation.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    if args.from_run:
        return record_run(Path(args.from_run), args.candidate, judge, path)
    for name in args.only:
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, steps in enumerate(sorted(args.stages)):
                run = run_config("mnist-dcgan-paper", device="cpu", out=tmp, resume=i > 0, progress=False, evaluate=False,
                                 steps=steps, ckpt_every=min(args.stages), dataset=args.dataset, **CANDIDATES[name])
                rows.append({"steps": steps, "wall_time_s": round(run.entry["wall_time_s"], 1),
                             **measure(run.model, judge, dataset=args.dataset)})
                print(name, json.dumps(rows[-1]), flush=True)
        with file_lock(path.parent / ".ablation.lock"):  # candidates may run in parallel processes
            record = json.loads(path.read_text()) if path.exists() else {}
            record[name] = {"command": command, "changes": _listed(CANDIDATES[name]),
                            "config": run.entry["config"], "hardware": run.entry["hardware"],
                            "judge_sha256": metrics.judge_sha256(args.dataset), "stages": rows}
            atomic_write_text(json.dumps(record, indent=1), path)
    return 0


def record_previous(rev: str) -> int:
    """previous.json: mnist-dcgan and fashion-dcgan as shipped at git revision ``rev``, measured by today's judges."""
    record = {}
    with tempfile.TemporaryDirectory() as tmp:
        def shipped(path: str) -> bytes:
            done = subprocess.run(["git", "show", f"{rev}:condgan_lib/checkpoints/{path}"], cwd=artifacts.ROOT,
                                  capture_output=True)
            if done.returncode:
                raise SystemExit(f"--previous {rev}: cannot read {path} from git ({done.stderr.decode().strip()})")
            return done.stdout
        (Path(tmp) / hub.MANIFEST).write_bytes(shipped(hub.MANIFEST))
        manifest = hub.read_manifest(tmp)
        for name in ("mnist-dcgan", "fashion-dcgan"):
            (Path(tmp) / manifest[name]["file"]).write_bytes(shipped(manifest[name]["file"]))
            dataset = manifest[name]["config"]["dataset"]
            judge = hub.load_pretrained(metrics.CLASSIFIER_FOR[dataset])
            record[name] = {k: manifest[name][k] for k in ("command", "config", "steps", "wall_time_s", "hardware",
                                                         "sha256", "commit") if k in manifest[name]}
            generator = hub.load_pretrained(name, directory=tmp)
            # the entry's metrics as ``evaluate --record`` measures them, and the judged share, both by today's judge
            record[name]["metrics"] = metrics.evaluate_generator(generator, dataset, classifier=judge,
                                                                 n=manifest[name]["metrics"].get("n", 2000))
            record[name]["judged"] = measure(generator, judge, dataset=dataset)
            record[name]["judge_sha256"] = metrics.judge_sha256(dataset)
            print(name, json.dumps(record[name]["judged"]))
    atomic_write_text(json.dumps(record, indent=1), artifacts.ROOT / "dcgan" / "previous.json")
    return 0


def record_run(run: Path, name: str, judge, path: Path) -> int:
    """Measure the MNIST generator a training-command run left in ``run`` as a stage of candidate ``name``."""
    [entry_path] = run.glob("*.manifest_entry.json")
    entry = json.loads(entry_path.read_text())
    # the command as a reader runs it, on the training command's default run folder
    command = f"python scripts/dcgan_ablation.py --from-run runs/{entry['config']['name']} --as {name}"
    expected = get_config("mnist-dcgan-paper", **CANDIDATES[name])
    recorded = type(expected).field_defaults() | entry["config"]   # fields added since the run: their defaults
    changed = differing_fields(recorded, expected.to_dict(), ("name", "steps", *RUN_ONLY))
    if changed:
        raise SystemExit(f"{run} was not trained with {name}'s recipe on MNIST (differs in: {', '.join(changed)})")
    file = run / entry["file"]
    if hub.sha256_of(file) != entry["sha256"]:
        raise SystemExit(f"{file} is not the file {entry_path.name} describes (another sha256); train the run again")
    generator = hub.build_model(torch.load(file, map_location="cpu", weights_only=True), entry["file"])
    stage = {"steps": entry["steps"], "wall_time_s": entry["wall_time_s"], **measure(generator, judge),
             "trained_by": [s["command"] for s in entry.get("segments", [entry])]}
    print(name, json.dumps(stage), flush=True)
    judge_sha = metrics.judge_sha256("mnist")
    with file_lock(path.parent / ".ablation.lock"):
        record = json.loads(path.read_text()) if path.exists() else {}
        row = record.setdefault(name, {"command": command, "changes": _listed(CANDIDATES[name]),
                                       "config": entry["config"], "hardware": entry["hardware"],
                                       "judge_sha256": judge_sha, "stages": []})
        if row["judge_sha256"] != judge_sha:       # a new judge: the old judge's stages go, and the output says so
            print(f"{name}: dropped the stages measured by another judge "
                  f"({', '.join(str(s['steps']) for s in row['stages'])} steps); measure them again", flush=True)
            row.update(judge_sha256=judge_sha, stages=[])
        row["stages"] = sorted([s for s in row["stages"] if s["steps"] != stage["steps"]] + [stage],
                               key=lambda s: s["steps"])
        atomic_write_text(json.dumps(record, indent=1), path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
