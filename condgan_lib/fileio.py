"""Files and facts about the machine: atomic writes, checksums, locks, the git commit, the hardware.

Infrastructure used by every layer above it (the data cache, the training engine, the shipped checkpoints); it
imports nothing else from the package. A file written here is either the old file or the whole new one, never half
of either, and it keeps the permissions an ordinary ``open(..., "w")`` would give it (0644 under the usual umask).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import torch

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one writer at a time there
    fcntl = None


def sha256_of(path: str | Path) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable) -> None:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, flush it to disk, then rename it onto ``path``.

    A crash or a kill leaves either the old file or the new one, and no temporary file behind when Python can clean
    up. The new file gets mode ``0666 & ~umask`` (0644 usually), not ``mkstemp``'s private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(obj, path: str | Path) -> None:
    """``torch.save`` through ``atomic_write``: a crash never leaves half a checkpoint."""
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str | Path) -> None:
    """Write a text file (UTF-8) through ``atomic_write``."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if needed) for a read-modify-write by several processes.

    The lock file is left empty in place: deleting it while another process waits on it would let two writers in.
    Callers keep it out of the way (a dot-name in a cache or run folder, or the system's temporary folder).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def git_commit() -> str | None:
    """The source's git commit (``-dirty`` when files differ from it), or ``None`` outside a git checkout."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], capture_output=True,
                              text=True, timeout=10, cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; a clear error for an unavailable CUDA request."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but CUDA is not available; use --device cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, not {device!r}")
    return device


def hardware(device: str, processes: int = 1, backend: str = "") -> str:
    """A one-line description of where a run happened (with the number of processes of a data-parallel run)."""
    if device.startswith("cuda"):
        one = f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    else:
        cpu = platform.processor() or platform.machine()
        one = f"{cpu} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
    return one if processes == 1 else f"{processes} processes ({backend}), each: {one}"
