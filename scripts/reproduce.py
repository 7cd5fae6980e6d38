"""Re-create a shipped checkpoint from its manifest entry and compare it with the shipped file, weight by weight.

    python scripts/reproduce.py NAME [--work DIR] [--from-run DIR] [--record]

The entry's ``command`` is run from this checkout without ``--ship`` into ``WORK/CONFIG`` (or, with ``--from-run``, a
run folder made that way earlier is compared). Training on the CPU with a fixed seed and thread count is
deterministic, and a resumed run equals an uninterrupted one (tests/test_engine.py), so a file made in several
segments, or in a scratch folder, is re-created by one plain run of its command.

With ``--record`` and identical weights the entry's ``command`` and ``commit`` become the command that was run and its
commit (which must be a clean commit), and ``reproduced`` records the run; the ``segments`` that first made the file
stay as they were. Different weights are reported and never recorded as a reproduction.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from condgan_lib import hub  # noqa: E402
from condgan_lib.fileio import git_commit, sha256_of  # noqa: E402

DROPPED = {"--resume": 0, "--out": 1}        # options of the training command and how many values follow


def canonical_command(command: str) -> str:
    """The command without its run folder and ``--resume``, with ``--ship``: what re-creates the shipped file."""
    words, kept = shlex.split(command), []
    i = 0
    while i < len(words):
        if words[i] in DROPPED:
            i += 1 + DROPPED[words[i]]
            continue
        kept.append(words[i])
        i += 1
    return shlex.join(kept if "--ship" in kept else kept + ["--ship"])


def compare(shipped: Path, candidate: Path) -> dict:
    """Weights, constructor arguments and checksum of two checkpoint files."""
    a = torch.load(shipped, map_location="cpu", weights_only=True)
    b = torch.load(candidate, map_location="cpu", weights_only=True)
    sa, sb = a["state_dict"], b["state_dict"]
    same_keys = sa.keys() == sb.keys()
    diffs = [(sa[k].double() - sb[k].double()).abs().max().item() if sa[k].numel() else 0.0
             for k in sa if same_keys and sa[k].shape == sb[k].shape]
    identical = same_keys and len(diffs) == len(sa) and all(torch.equal(sa[k], sb[k]) for k in sa)
    return {"identical_weights": identical, "same_kwargs": a.get("kwargs") == b.get("kwargs"),
            "max_abs_difference": max(diffs) if diffs else None,
            "same_sha256": sha256_of(shipped) == sha256_of(candidate)}


def clean_commit() -> str:
    commit = git_commit()
    if not commit or commit.endswith("-dirty"):
        raise SystemExit(f"reproduce: the checkout is at {commit or 'no commit'}; commit or stash the changes first, "
                         f"so that the commit names the code that ran")
    return commit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="a shipped checkpoint (python -c 'import condgan_lib; "
                                     "print(condgan_lib.list_pretrained())')")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "reproduce", help="where the run goes")
    parser.add_argument("--from-run", type=Path, help="compare this finished run folder instead of training")
    parser.add_argument("--record", action="store_true", help="record an identical result in the manifest")
    args = parser.parse_args(argv)
    manifest = hub.read_manifest()
    if args.name not in manifest:
        raise SystemExit(f"reproduce: no shipped checkpoint {args.name!r}; known: {', '.join(sorted(manifest))}")
    entry = manifest[args.name]
    command = canonical_command(entry["command"])
    run = args.from_run or args.work / entry["config"]["name"]
    if args.from_run is None:
        clean_commit()
        words = shlex.split(command)
        assert words[:3] == ["python", "-m", "condgan_lib.train"], command
        train = [sys.executable, *[w for w in words[1:] if w != "--ship"], "--out", str(run)]
        print("running:", shlex.join(train), flush=True)
        subprocess.run(train, check=True, cwd=ROOT)
    made = json.loads((run / f"{args.name}.manifest_entry.json").read_text())
    result = compare(hub.CHECKPOINT_DIR / entry["file"], run / f"{args.name}.pt")
    print(json.dumps({"name": args.name, "command": command, "run_commit": made["commit"], **result}, indent=1))
    if not args.record:
        return 0 if result["identical_weights"] else 1
    if not result["identical_weights"]:
        print("reproduce: the weights differ; nothing recorded", file=sys.stderr)
        return 1
    if not made["commit"] or made["commit"].endswith("-dirty"):
        print(f"reproduce: the run was made at {made['commit']}, not a clean commit; nothing recorded",
              file=sys.stderr)
        return 1
    entry = {**entry, "command": command, "commit": made["commit"],
             "reproduced": {"command": made["command"], "commit": made["commit"], "hardware": made["hardware"],
                            "wall_time_s": round(made["wall_time_s"], 1), "identical_weights": True,
                            "same_sha256": result["same_sha256"],
                            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}}
    hub.write_manifest_entry(args.name, entry)
    print(f"recorded: {args.name} is re-created by `{command}` at {made['commit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
