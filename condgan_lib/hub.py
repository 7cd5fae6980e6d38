"""Checkpoints shipped inside the package, and the manifest that says how each one was made.

Serves every chapter that loads a trained model. ``condgan_lib/checkpoints/manifest.json`` maps a name to its file,
SHA-256, the command and config that produced it, steps, wall time, hardware and measured metrics. A shipped file is
a plain dict (``model_payload``): format version, family, class name, constructor arguments, weights, and for text
models the vocabulary. It is loaded with ``torch.load(..., weights_only=True)``, so no pickled code ever runs, and
the class is found through ``registry`` (only that family's module is imported).
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import torch

from . import registry
from .fileio import atomic_save, atomic_write_text, file_lock, sha256_of

__all__ = ["CheckpointError", "list_pretrained", "load_pretrained", "read_manifest", "write_manifest_entry",
           "model_payload", "build_model", "atomic_save", "sha256_of", "CHECKPOINT_DIR", "MANIFEST"]

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
MANIFEST = "manifest.json"
PAYLOAD_FORMAT = 1                        # the layout of a shipped file written by ``model_payload``


class CheckpointError(RuntimeError):
    """A shipped checkpoint is missing, corrupt, or does not match its manifest entry."""


def read_manifest(directory: str | Path | None = None) -> dict:
    """The manifest of shipped checkpoints (an empty dict when there is none)."""
    path = Path(directory or CHECKPOINT_DIR) / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"the manifest {path} is not valid JSON ({exc}); restore it from the repository "
                              f"(git checkout -- {path.name}) or reinstall the package") from None


def _lock_path(directory: Path) -> Path:
    """The lock of a manifest, kept in the system's temporary folder so that none is left in the package."""
    key = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"condgan_lib-manifest-{key}.lock"


def write_manifest_entry(name: str, entry: dict, directory: str | Path | None = None) -> None:
    """Add or replace one entry of the manifest, written atomically (the only way the manifest changes)."""
    directory = Path(directory or CHECKPOINT_DIR)
    with file_lock(_lock_path(directory)):  # two runs shipping at once must not lose each other's entry
        manifest = read_manifest(directory)
        manifest[name] = entry
        atomic_write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n", directory / MANIFEST)


def list_pretrained(directory: str | Path | None = None) -> list[str]:
    """Names of the shipped checkpoints."""
    return sorted(read_manifest(directory))


def model_payload(model: torch.nn.Module, kwargs: dict, name: str, family: str | None = None) -> dict:
    """What a shipped file holds: format, family, class name, constructor arguments, weights (and vocabulary)."""
    fam = registry.family_named(family) if family else registry.family_of_kind(type(model).__name__)
    payload = {"format": PAYLOAD_FORMAT, "family": fam.name, "name": name, "kind": type(model).__name__,
               "kwargs": kwargs, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    if fam.vocabulary is not None:
        payload["vocab"] = list(fam.vocabulary())
    return payload


def _check_vocabulary(saved: list[str], current: list[str], name: str) -> None:
    if saved == current:
        return
    added, removed = sorted(set(current) - set(saved)), sorted(set(saved) - set(current))
    moved = [w for i, w in enumerate(saved) if i < len(current) and w in current and current[i] != w][:5]
    raise CheckpointError(f"{name!r} was trained with another vocabulary ({len(saved)} words, this code has "
                          f"{len(current)}; added {added or 'none'}, removed {removed or 'none'}, first words at other "
                          f"positions: {moved or 'none'}): its token ids would mean other words. Use the code it was "
                          f"trained with, or retrain it.")


def build_model(payload: dict, name: str = "") -> torch.nn.Module:
    """Re-create the model described by a payload (see ``model_payload``), in eval mode."""
    fam = registry.family_named(payload["family"]) if "family" in payload else registry.family_of_kind(payload["kind"])
    if fam.vocabulary is not None and "vocab" in payload:
        _check_vocabulary(payload["vocab"], list(fam.vocabulary()), name or payload.get("name", "?"))
    model = registry.model_class(fam, payload["kind"])(**payload["kwargs"])
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def recreate_hint(entry: dict, name: str) -> str:
    """How to re-create a shipped file: the command its manifest entry records."""
    return f"re-create it with `{entry.get('command', f'python -m condgan_lib.train --config {name} --ship')}`"


def read_payload(name: str, directory: str | Path | None = None) -> tuple[dict, dict, Path]:
    """The manifest entry, the checked payload and the path of shipped checkpoint ``name``."""
    directory = Path(directory or CHECKPOINT_DIR)
    manifest = read_manifest(directory)
    if name not in manifest:
        known = ", ".join(sorted(manifest)) or "none are shipped"
        raise ValueError(f"no pretrained model named {name!r}; known names: {known}")
    entry = manifest[name]
    path = directory / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} for {name!r} is missing; {recreate_hint(entry, name)}")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise CheckpointError(f"checkpoint file {path} has SHA-256 {actual[:12]}..., the manifest says "
                              f"{entry['sha256'][:12]}...: the file is corrupt or stale; {recreate_hint(entry, name)}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint file {path} for {name!r} cannot be read ({type(exc).__name__}: {exc}); "
                              f"{recreate_hint(entry, name)}") from exc
    return entry, payload, path


def load_pretrained(name: str, device: str = "cpu", directory: str | Path | None = None) -> torch.nn.Module:
    """Load a shipped model by name (see ``list_pretrained()``), checked against its manifest SHA-256."""
    entry, payload, path = read_payload(name, directory)
    try:
        model = build_model(payload, name)
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"checkpoint file {path} for {name!r} cannot be read ({type(exc).__name__}: {exc}); "
                              f"{recreate_hint(entry, name)}") from exc
    return model.to(device)


def load_optional(name: str, device: str = "cpu"):
    """The shipped model ``name``, or None when it is not shipped or cannot be loaded (a judge that is optional)."""
    try:
        return load_pretrained(name, device=device)
    except (ValueError, CheckpointError):
        return None


def upgrade_payload(name: str, directory: str | Path | None = None) -> bool:
    """Rewrite shipped file ``name`` in the current payload format (same weights) and record its new SHA-256 beside
    the one the training run wrote (``sha256_before_format_upgrade``); returns False when it already is current.
    Run by ``python -m condgan_lib.evaluate NAME --record``."""
    directory = Path(directory or CHECKPOINT_DIR)
    entry, payload, path = read_payload(name, directory)
    if payload.get("format") == PAYLOAD_FORMAT:
        return False
    model = build_model(payload, name)
    atomic_save(model_payload(model, payload["kwargs"], name), path)
    family = registry.family_of_kind(payload["kind"]).name
    write_manifest_entry(name, {**entry, "family": family, "sha256": sha256_of(path),
                                "sha256_before_format_upgrade": entry["sha256"]}, directory)
    return True
