"""condgan_lib.data: the offline mirror, its checksums, and the error when no data can be had."""
import gzip
from pathlib import Path

import pytest
import torch

from condgan_lib import data


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A fresh cache folder and an empty in-memory cache, so every test really loads."""
    monkeypatch.setenv(data.ROOT_ENV, str(tmp_path / "root"))
    data._load_uint8.cache_clear()
    data._file_digest.cache_clear()
    yield tmp_path
    data._load_uint8.cache_clear()
    data._file_digest.cache_clear()


def _fake_mirror(tmp_path: Path, name: str) -> Path:
    """A mirror folder with valid-looking IDX files (the checksums will not match the published ones)."""
    raw = tmp_path / "mirror" / name / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 4), ("t10k", 2)):
        with gzip.open(raw / f"{split}-images-idx3-ubyte.gz", "wb") as f:
            f.write((2051).to_bytes(4, "big") + n.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(784 * n))
        with gzip.open(raw / f"{split}-labels-idx1-ubyte.gz", "wb") as f:
            f.write((2049).to_bytes(4, "big") + n.to_bytes(4, "big") + bytes(n))
    return tmp_path / "mirror"


def test_mirror_loads_mnist_as_float_tensors(fresh):
    import os
    mirror = Path(os.environ.get(data.MIRROR_ENV) or Path(__file__).resolve().parents[2] / "shared" / "datasets")
    if not mirror.exists():
        pytest.skip("the offline mirror ../shared/datasets is not beside the project")
    saved = os.environ.get(data.MIRROR_ENV)
    os.environ[data.MIRROR_ENV] = str(mirror)
    try:
        test = data.load_mnist("test")
    finally:
        if saved is None:
            del os.environ[data.MIRROR_ENV]
    assert test.images.shape == (10000, 1, 28, 28)
    assert test.images.dtype == torch.float32
    assert 0.0 <= test.images.min() and test.images.max() <= 1.0
    assert test.labels.dtype == torch.long and set(test.labels.unique().tolist()) == set(range(10))
    assert test.labels[:5].tolist() == [7, 2, 1, 0, 4]  # the first MNIST test digits


def test_mirror_file_with_wrong_checksum_is_refused_and_not_used(fresh, monkeypatch):
    mirror = _fake_mirror(fresh, "mnist")
    monkeypatch.setenv(data.MIRROR_ENV, str(mirror))
    with pytest.raises(data.ChecksumError, match="SHA-256") as info:
        data.load_mnist("train")
    assert "train-images-idx3-ubyte.gz" in str(info.value) or "labels" in str(info.value)
    assert not (fresh / "root" / "MNIST" / "raw").exists(), "a file that failed its checksum must not be used"


def test_missing_mirror_file_names_the_file(fresh, monkeypatch):
    (fresh / "empty").mkdir()
    monkeypatch.setenv(data.MIRROR_ENV, str(fresh / "empty"))
    with pytest.raises(data.DataUnavailableError, match="missing") as info:
        data.load_fashion_mnist("test")
    assert str(fresh / "empty" / "fashion-mnist" / "raw") in str(info.value)


def test_a_mirror_folder_that_does_not_exist_is_named_as_missing(fresh, monkeypatch):
    monkeypatch.setenv(data.MIRROR_ENV, str(fresh / "no-such-folder"))
    with pytest.raises(data.DataUnavailableError, match="that folder does not exist") as info:
        data.load_mnist("test")
    assert str(fresh / "no-such-folder") in str(info.value)


def test_no_mirror_and_no_network_gives_one_clear_error(fresh, monkeypatch):
    monkeypatch.delenv(data.MIRROR_ENV, raising=False)
    urls = []

    def no_network(url, *args, **kwargs):
        urls.append(url)
        raise RuntimeError(f"Error downloading {url}")

    monkeypatch.setattr(data, "download_url", no_network)
    with pytest.raises(data.DataUnavailableError) as info:
        data.load_mnist("train")
    message = str(info.value)
    assert data.MIRROR_ENV in message and "internet" in message
    assert len(urls) == len(data._download_urls("mnist")), "every known mirror of the first file was tried"
    assert not list((fresh / "root" / "MNIST" / "raw").glob("*ubyte")), "nothing was unpacked"


def test_bad_split_and_unknown_dataset_are_rejected(fresh):
    with pytest.raises(ValueError, match="split"):
        data.load_mnist("validation")
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load_images("cifar10")


def test_random_batches_cover_each_epoch_exactly_once():
    images, labels = torch.arange(10).float().view(10, 1, 1, 1), torch.arange(10)
    batches = data.random_batches(images, labels, 5, seed=0)
    seen = torch.cat([next(batches)[1] for _ in range(2)])
    assert sorted(seen.tolist()) == list(range(10))


def test_random_batches_resume_at_any_step():
    images, labels = torch.arange(30).float().view(30, 1, 1, 1), torch.arange(30)
    full = data.random_batches(images, labels, 4, seed=3)
    expected = [next(full)[1].tolist() for _ in range(12)]  # crosses two epoch boundaries (7 batches per epoch)
    resumed = data.random_batches(images, labels, 4, seed=3, start_step=5)
    assert [next(resumed)[1].tolist() for _ in range(7)] == expected[5:]
