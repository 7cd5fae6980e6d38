"""MNIST and Fashion-MNIST as in-memory tensors, from an offline mirror or a download, through a self-healing cache.

Where the files come from, in order:

1. ``$CONDGAN_DATA_MIRROR`` when it is set: a folder laid out as ``mnist/raw/*.gz`` and
   ``fashion-mnist/raw/*.gz`` (the files torchvision downloads). Each file is checked against
   its published SHA-256 before it is used; a file that does not match is never read.
2. Otherwise the ``.gz`` files are downloaded from torchvision's mirrors and checked the same way.

The cache, ``$CONDGAN_DATA_ROOT`` (default ``~/.cache/condgan_lib/data``), keeps the verified ``.gz`` files and
their unpacked IDX files in ``MNIST/raw`` and ``FashionMNIST/raw`` (torchvision's layout). Each unpacked file is
written under a temporary name, flushed to disk and renamed, and its size and SHA-256 are recorded beside it in
``unpacked.json``. Every load checks the sizes, and the checksums once per process; a file that an interrupted
unpack left empty or partial, or that changed on disk, is unpacked again from its verified ``.gz`` with a note on
stderr. A lock lets several processes fill one fresh cache at the same time.

Each split is decoded once, kept in memory as a ``uint8`` tensor, and returned as float images
in ``[0, 1]`` of shape ``[N, 1, 28, 28]``: no per-item PIL decoding ever happens in a training loop.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

import torch

from .fileio import atomic_write, atomic_write_text, file_lock, sha256_of

MIRROR_ENV = "CONDGAN_DATA_MIRROR"
ROOT_ENV = "CONDGAN_DATA_ROOT"

# Published SHA-256 of the gzip files torchvision downloads (the same bytes as the official mirrors).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}

# The cache folder of each dataset (torchvision's names).
_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_RECORD = "unpacked.json"          # size and SHA-256 of every unpacked file, written when it was unpacked
_IDX_MAGIC = {"images": 2051, "labels": 2049}


class DataUnavailableError(RuntimeError):
    """The dataset could be found neither in the offline mirror nor through a download."""


class ChecksumError(DataUnavailableError):
    """A mirror file's SHA-256 differs from the published one; the file was not used."""


class ImageSet(NamedTuple):
    """A labelled image set in memory: ``images`` float ``[N, 1, 28, 28]`` in ``[0, 1]``, ``labels`` long ``[N]``."""
    images: torch.Tensor
    labels: torch.Tensor


class _UnreadableFile(ValueError):
    """An unpacked IDX file whose header or length is wrong."""


def _data_root() -> Path:
    return Path(os.environ.get(ROOT_ENV, Path.home() / ".cache" / "condgan_lib" / "data"))


def _raw_folder(name: str) -> Path:
    return _data_root() / _FOLDERS[name] / "raw"


def _unpacked_names(name: str) -> list[str]:
    return [filename[:-3] for filename in SHA256[name]]


# ------------------------------------------------------------------------------------ where the .gz files come from

def _copy_from_mirror(name: str, mirror: Path, raw: Path, filenames: list[str]) -> None:
    """Check the mirror's ``filenames`` of ``name`` (all of them before any is used), then copy them into ``raw``."""
    source = mirror / name / "raw"
    if not mirror.is_dir():
        raise DataUnavailableError(
            f"{MIRROR_ENV}={mirror} is set but that folder does not exist. Point it at a folder holding "
            f"{name}/raw/ with the files {', '.join(SHA256[name])}, or unset {MIRROR_ENV} to download them.")
    for filename in filenames:
        path, expected = source / filename, SHA256[name][filename]
        if not path.is_file():
            raise DataUnavailableError(
                f"{MIRROR_ENV}={mirror} is set but {path} is missing. Put the four raw "
                f"{name} .gz files in {source}, or unset {MIRROR_ENV} to download them.")
        actual = sha256_of(path)
        if actual != expected:
            raise ChecksumError(
                f"{path} has SHA-256 {actual}, not the published {expected}; the file was not used. "
                f"Replace it with the original {filename}.")
    for filename in filenames:
        _copy_atomically(source / filename, raw / filename)


def _copy_atomically(source: Path, target: Path) -> None:
    with open(source, "rb") as src:
        atomic_write(target, lambda dst: shutil.copyfileobj(src, dst, 1 << 20))


def _download_urls(name: str) -> tuple[str, ...]:
    """The base URLs torchvision downloads a dataset from (torchvision is imported only when a download is needed)."""
    from torchvision.datasets import MNIST, FashionMNIST

    return tuple({"mnist": MNIST, "fashion-mnist": FashionMNIST}[name].mirrors)


def download_url(url: str, root: str, filename: str) -> None:
    """torchvision's download, imported when first used."""
    from torchvision.datasets.utils import download_url as fetch

    fetch(url, root, filename=filename)


def _download(name: str, raw: Path, filenames: list[str]) -> None:
    """Download ``filenames`` of ``name`` into ``raw``, trying each of torchvision's mirrors; each is checked."""
    staging = raw / ".download"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for filename in filenames:
            error: Exception | None = None
            for base in _download_urls(name):
                try:
                    download_url(base + filename, str(staging), filename=filename)
                    actual = sha256_of(staging / filename)
                    if actual != SHA256[name][filename]:
                        raise ChecksumError(f"{base + filename} has SHA-256 {actual}, not the published "
                                            f"{SHA256[name][filename]}")
                    with open(staging / filename, "rb+") as f:
                        os.fsync(f.fileno())
                    os.replace(staging / filename, raw / filename)
                    break
                except Exception as exc:  # torchvision raises RuntimeError, URLError or OSError, by the failure
                    (staging / filename).unlink(missing_ok=True)
                    error = exc
            else:
                raise DataUnavailableError(
                    f"could not download {name} ({type(error).__name__}: {error}). Either connect to the internet, "
                    f"or set {MIRROR_ENV} to a folder holding {name}/raw/ with the files "
                    f"{', '.join(SHA256[name])}.") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetch_archives(name: str, raw: Path, filenames: list[str]) -> None:
    """Make sure ``raw`` holds each of ``filenames`` with its published SHA-256: kept, copied or downloaded."""
    missing = []
    for filename in filenames:
        path = raw / filename
        if not (path.is_file() and sha256_of(path) == SHA256[name][filename]):
            path.unlink(missing_ok=True)
            missing.append(filename)
    if not missing:
        return
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        _copy_from_mirror(name, Path(mirror), raw, missing)
    else:
        _download(name, raw, missing)


# ------------------------------------------------------------------------------------------ the unpacked files

@functools.lru_cache(maxsize=None)
def _file_digest(path: str, size: int, mtime_ns: int, inode: int) -> str:
    """``sha256_of(path)``, computed once per process for each version of the file (its size, time and inode)."""
    return sha256_of(path)


def _digest(path: Path) -> str:
    stat = path.stat()
    return _file_digest(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


def _read_record(raw: Path) -> dict:
    try:
        record = json.loads((raw / _RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _problems(name: str, raw: Path, record: dict, deep: list[str], forced: dict[str, str]) -> dict[str, str]:
    """What is wrong with each unpacked file of ``name``: sizes for all, checksums for those in ``deep``."""
    problems = {}
    for unpacked in _unpacked_names(name):
        path, entry = raw / unpacked, record.get(unpacked)
        if unpacked in forced:
            problems[unpacked] = forced[unpacked]
        elif not path.is_file():
            problems[unpacked] = "missing"
        elif not isinstance(entry, dict) or not {"bytes", "sha256"} <= entry.keys():
            problems[unpacked] = f"not in {_RECORD}"
        elif path.stat().st_size != entry["bytes"]:
            problems[unpacked] = f"{path.stat().st_size} bytes, not {entry['bytes']}"
        elif unpacked in deep and _digest(path) != entry["sha256"]:
            problems[unpacked] = "its SHA-256 differs from the one recorded when it was unpacked"
    return problems


def _unpack(gz_path: Path, target: Path) -> dict:
    """Decompress ``gz_path`` to ``target`` atomically; return its size and SHA-256."""
    digest, size = hashlib.sha256(), 0

    def write(out) -> None:
        nonlocal size
        with gzip.open(gz_path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)

    atomic_write(target, write)
    return {"bytes": size, "sha256": digest.hexdigest(), "from": gz_path.name}


def _ensure_unpacked(name: str, wanted: list[str], forced: dict[str, str] | None = None) -> Path:
    """Make the cache of ``name`` whole (filling or repairing it under a lock); return its ``raw`` folder."""
    forced = forced or {}
    raw = _raw_folder(name)
    if not _problems(name, raw, _read_record(raw), wanted, forced):
        return raw
    with file_lock(raw.parent / ".fill.lock"):
        record = _read_record(raw)
        problems = _problems(name, raw, record, wanted, forced)   # another process may have filled it meanwhile
        if not problems:
            return raw
        leftovers = list(raw.glob(".*.tmp")) if raw.is_dir() else []   # what a killed unpack or copy left behind
        fresh = not record and not leftovers and not any((raw / u).exists() for u in _unpacked_names(name))
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        try:
            _fetch_archives(name, raw, [u + ".gz" for u in problems])
        except DataUnavailableError as exc:
            if fresh:
                raise
            path, why = next(iter(problems.items()))
            raise type(exc)(
                f"the cached file {raw / path} is damaged ({why}) and cannot be repaired, because no verified "
                f"{path}.gz is left in the cache and getting one failed: {exc} To start the cache afresh, "
                f"delete the folder {raw}.") from exc
        if not fresh:
            what = "; ".join(f"{u}: {why}" for u, why in problems.items())
            print(f"condgan_lib.data: repairing {raw} from its verified .gz files ({what})", file=sys.stderr)
        for unpacked in problems:
            record[unpacked] = _unpack(raw / (unpacked + ".gz"), raw / unpacked)
        atomic_write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", raw / _RECORD)
    return raw


def _read_idx(path: Path, kind: str) -> torch.Tensor:
    """An IDX file of MNIST's format: a big-endian header (magic, count, and rows, cols for images), then uint8."""
    data = bytearray(path.read_bytes())
    header = 16 if kind == "images" else 8
    if len(data) < header:
        raise _UnreadableFile(f"{len(data)} bytes, shorter than the IDX header")
    fields = [int.from_bytes(data[i:i + 4], "big") for i in range(0, header, 4)]
    if fields[0] != _IDX_MAGIC[kind]:
        raise _UnreadableFile(f"magic number {fields[0]}, not {_IDX_MAGIC[kind]}")
    shape = fields[1:]
    if len(data) - header != shape[0] * (shape[1] * shape[2] if kind == "images" else 1):
        raise _UnreadableFile(f"{len(data)} bytes do not fit the header's shape {shape}")
    return torch.frombuffer(data, dtype=torch.uint8, offset=header).view(*shape)


@functools.lru_cache(maxsize=None)
def _load_uint8(name: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if name not in SHA256:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(SHA256)}")
    prefix = "train" if train else "t10k"
    files = {"images": f"{prefix}-images-idx3-ubyte", "labels": f"{prefix}-labels-idx1-ubyte"}
    unreadable: dict[str, str] = {}
    for _ in range(2):  # a file that passes its checks but cannot be parsed is unpacked again, once
        raw = _ensure_unpacked(name, list(files.values()), unreadable)
        tensors, unreadable = {}, {}
        for kind, unpacked in files.items():
            try:
                tensors[kind] = _read_idx(raw / unpacked, kind)
            except _UnreadableFile as exc:
                unreadable[unpacked] = f"unreadable: {exc}"
        if not unreadable:
            return tensors["images"], tensors["labels"].long()
    unpacked, why = next(iter(unreadable.items()))
    raise DataUnavailableError(f"{raw / unpacked} is {why}, even after it was unpacked again from its verified "
                               f".gz. Delete the folder {raw} and load again.")


def load_images(name: str, split: str = "train") -> ImageSet:
    """Load ``"mnist"`` or ``"fashion-mnist"`` (``split`` is ``"train"`` or ``"test"``) as float tensors in [0, 1]."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    data, targets = _load_uint8(name, split == "train")
    return ImageSet(data.unsqueeze(1).float().div_(255.0), targets.long())


def load_mnist(split: str = "train") -> ImageSet:
    """MNIST digits, ``[N, 1, 28, 28]`` in [0, 1], labels 0-9."""
    return load_images("mnist", split)


def load_fashion_mnist(split: str = "train") -> ImageSet:
    """Fashion-MNIST clothing images, ``[N, 1, 28, 28]`` in [0, 1], labels 0-9 (see ``CLASS_NAMES``)."""
    return load_images("fashion-mnist", split)


def random_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int = 0,
                   start_step: int = 0):
    """Endless shuffled mini-batches from in-memory tensors, one fresh permutation per epoch.

    The permutations are drawn in turn from one generator seeded with ``seed``, so the batch at any step is a
    function of ``(seed, step)`` alone: a run resumed at ``start_step`` sees exactly the batches it would have seen.
    """
    n = images.shape[0]
    per_epoch = n // batch_size
    if per_epoch < 1:
        raise ValueError(f"batch_size {batch_size} is larger than the {n} images")
    generator = torch.Generator().manual_seed(seed)
    epoch, offset = divmod(start_step, per_epoch)
    for _ in range(epoch):  # replay the permutations of the epochs already done
        torch.randperm(n, generator=generator)
    while True:
        order = torch.randperm(n, generator=generator)
        for b in range(offset, per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size].to(images.device)
            yield images[idx], labels[idx]
        offset = 0
