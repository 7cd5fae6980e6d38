"""Stored results of real runs that the chapters read: training histories, run records, benchmark tables.

Each file was written by a command of the book (its README or the chapter that reads it says which) and ships inside
the package, so that a chapter finds it wherever the notebook runs (Colab, an installed copy, any working folder):
``artifacts.path("mnist-projection/history.json")``. Runs on a GPU (``scripts/gpu_check.sh``) land in ``gpu/``.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def path(name: str) -> Path:
    """The stored file ``name`` (a path relative to this folder); a FileNotFoundError naming it when it is absent."""
    target = ROOT / name
    if not target.exists():
        raise FileNotFoundError(f"no stored artifact {name!r} in {ROOT}; it is written by the command that the "
                                f"chapter reading it names")
    return target


def exists(name: str) -> bool:
    """Whether the stored file or folder ``name`` is there (e.g. ``gpu/`` only after a GPU run was stored)."""
    return (ROOT / name).exists()
