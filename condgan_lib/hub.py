"""Checkpoints shipped inside the package, and the manifest that says how each one was made.

``condgan_lib/checkpoints/manifest.json`` maps a name to its file, SHA-256, the command and config that produced it,
steps, wall time, hardware and measured metrics. Files are plain dicts of tensors and numbers, loaded with
``torch.load(..., weights_only=True)``: no pickled code ever runs.
"""
from __future__ import annotations

import contextlib

import json
import os
import tempfile
from pathlib import Path

import torch

from .classifier import DomainClassifier
from .data import sha256_of
from .models import Generator, MLPGenerator
from .clip import CLIPModel
from .unclip import DiffusionPrior, EmbeddingConditionedGenerator, TinyDiffusionDecoder
from .probe import AttributeProbe
from .text2img import TextToImageGenerator

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
MANIFEST = "manifest.json"
MODEL_CLASSES = {cls.__name__: cls for cls in (Generator, MLPGenerator, DomainClassifier)}
MODEL_CLASSES.update({cls.__name__: cls for cls in (CLIPModel, DiffusionPrior, EmbeddingConditionedGenerator,
                                                    TinyDiffusionDecoder)})
MODEL_CLASSES.update({cls.__name__: cls for cls in (AttributeProbe, TextToImageGenerator)})


class CheckpointError(RuntimeError):
    """A shipped checkpoint is missing, corrupt, or does not match its manifest entry."""


def atomic_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(text: str, path: str | Path) -> None:
    """Write a text file through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def read_manifest(directory: str | Path | None = None) -> dict:
    """The manifest of shipped checkpoints (an empty dict when there is none)."""
    path = Path(directory or CHECKPOINT_DIR) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def write_manifest_entry(name: str, entry: dict, directory: str | Path | None = None) -> None:
    """Add or replace one entry of the manifest, written atomically (the only way the manifest changes)."""
    directory = Path(directory or CHECKPOINT_DIR)
    with _manifest_lock(directory):  # two runs shipping at once must not lose each other's entry
        manifest = read_manifest(directory)
        manifest[name] = entry
        atomic_write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n", directory / MANIFEST)


@contextlib.contextmanager
def _manifest_lock(directory: Path):
    """An exclusive lock on ``directory/.manifest.lock`` for a read-modify-write of the manifest (POSIX only)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; ship one run at a time
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".manifest.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def list_pretrained(directory: str | Path | None = None) -> list[str]:
    """Names of the shipped checkpoints."""
    return sorted(read_manifest(directory))


def model_payload(model: torch.nn.Module, kwargs: dict, name: str) -> dict:
    """What a shipped file holds: the class name, its constructor arguments and the weights."""
    return {"name": name, "kind": type(model).__name__, "kwargs": kwargs,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def build_model(payload: dict) -> torch.nn.Module:
    """Re-create the model described by a payload (see ``model_payload``), in eval mode."""
    model = MODEL_CLASSES[payload["kind"]](**payload["kwargs"])
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def _recreate_hint(entry: dict, name: str) -> str:
    return f"re-create it with `{entry.get('command', f'python -m condgan_lib.train --config {name} --ship')}`"


def load_pretrained(name: str, device: str = "cpu", directory: str | Path | None = None) -> torch.nn.Module:
    """Load a shipped model by name (see ``list_pretrained()``), checked against its manifest SHA-256."""
    directory = Path(directory or CHECKPOINT_DIR)
    manifest = read_manifest(directory)
    if name not in manifest:
        known = ", ".join(sorted(manifest)) or "none are shipped"
        raise ValueError(f"no pretrained model named {name!r}; known names: {known}")
    entry = manifest[name]
    path = directory / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} for {name!r} is missing; {_recreate_hint(entry, name)}")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise CheckpointError(f"checkpoint file {path} has SHA-256 {actual[:12]}..., the manifest says "
                              f"{entry['sha256'][:12]}...: the file is corrupt or stale; {_recreate_hint(entry, name)}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(payload)
    except Exception as exc:
        raise CheckpointError(f"checkpoint file {path} for {name!r} cannot be read ({type(exc).__name__}: {exc}); "
                              f"{_recreate_hint(entry, name)}") from exc
    return model.to(device)


def train_or_load(name: str, device: str = "cpu", progress: bool = True, **overrides) -> torch.nn.Module:
    """Load the shipped checkpoint ``name`` when present; otherwise train it with the same config (and ``overrides``)."""
    if not overrides:
        try:
            model = load_pretrained(name, device=device)
            print(f"loaded shipped checkpoint {name!r}")
            return model
        except (ValueError, CheckpointError) as exc:
            print(f"{exc}\ntraining {name!r} from scratch instead")
    from .train import run_config  # imported here: training pulls in TensorBoard

    return run_config(name, device=device, progress=progress, **overrides)["model"].to(device).eval()
