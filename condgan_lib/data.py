"""MNIST and Fashion-MNIST as in-memory tensors, from an offline mirror or through torchvision.

Where the files come from, in order:

1. ``$CONDGAN_DATA_MIRROR`` when it is set: a folder laid out as ``mnist/raw/*.gz`` and
   ``fashion-mnist/raw/*.gz`` (the files torchvision downloads). Each file is checked against
   its published SHA-256 before it is used; a file that does not match is never read.
2. Otherwise torchvision downloads the dataset into ``$CONDGAN_DATA_ROOT``
   (default ``~/.cache/condgan_lib/data``).

Each split is decoded once, kept in memory as a ``uint8`` tensor, and returned as float images
in ``[0, 1]`` of shape ``[N, 1, 28, 28]``: no per-item PIL decoding ever happens in a training loop.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
from pathlib import Path
from typing import NamedTuple

import torch

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


class DataUnavailableError(RuntimeError):
    """The dataset could be found neither in the offline mirror nor through a download."""


class ChecksumError(DataUnavailableError):
    """A mirror file's SHA-256 differs from the published one; the file was not used."""


class ImageSet(NamedTuple):
    """A labelled image set in memory: ``images`` float ``[N, 1, 28, 28]`` in ``[0, 1]``, ``labels`` long ``[N]``."""
    images: torch.Tensor
    labels: torch.Tensor


def sha256_of(path: str | Path) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _torchvision_class(name: str):
    from torchvision import datasets
    return {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[name]


def _data_root() -> Path:
    return Path(os.environ.get(ROOT_ENV, Path.home() / ".cache" / "condgan_lib" / "data"))


def _copy_from_mirror(name: str, mirror: Path, root: Path) -> None:
    """Check every mirror file of ``name`` and extract it where torchvision expects it."""
    from torchvision.datasets.utils import extract_archive

    source = mirror / name / "raw"
    raw = root / _torchvision_class(name).__name__ / "raw"
    for filename, expected in SHA256[name].items():
        path = source / filename
        if not path.is_file():
            raise DataUnavailableError(
                f"{MIRROR_ENV}={mirror} is set but {path} is missing. Put the four raw "
                f"{name} .gz files in {source}, or unset {MIRROR_ENV} to download them.")
        actual = sha256_of(path)
        if actual != expected:
            raise ChecksumError(
                f"{path} has SHA-256 {actual}, not the published {expected}; the file was not used. "
                f"Replace it with the original {filename}.")
    raw.mkdir(parents=True, exist_ok=True)
    for filename in SHA256[name]:
        unpacked = raw / filename[:-3]
        if not unpacked.exists():
            tmp = raw / (filename + ".part")
            shutil.copyfile(source / filename, tmp)
            os.replace(tmp, raw / filename)
            extract_archive(str(raw / filename), str(raw), remove_finished=True)


@functools.lru_cache(maxsize=None)
def _load_uint8(name: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if name not in SHA256:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(SHA256)}")
    root = _data_root()
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        _copy_from_mirror(name, Path(mirror), root)
        dataset = _torchvision_class(name)(str(root), train=train, download=False)
    else:
        try:
            dataset = _torchvision_class(name)(str(root), train=train, download=True)
        except Exception as exc:  # torchvision raises RuntimeError or URLError depending on the failure
            raise DataUnavailableError(
                f"could not download {name} ({type(exc).__name__}: {exc}). Either connect to the internet, "
                f"or set {MIRROR_ENV} to a folder holding {name}/raw/ with the files "
                f"{', '.join(SHA256[name])}.") from exc
    return dataset.data.clone(), dataset.targets.clone()


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
