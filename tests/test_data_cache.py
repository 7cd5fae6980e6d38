"""The data cache heals itself: an interrupted or damaged unpack is repaired from the verified .gz on the next load,
two processes can fill one fresh cache together, and a cache that cannot be repaired gives one clear error."""
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.datasets.mnist import read_image_file, read_label_file

from condgan_lib import data

MIRROR = Path(os.environ.get(data.MIRROR_ENV) or Path(__file__).resolve().parents[2] / "shared" / "datasets")
pytestmark = pytest.mark.skipif(not (MIRROR / "mnist" / "raw").is_dir(),
                                reason="the offline mirror ../shared/datasets is not beside the project")
IMAGES, LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def _forget():
    """What a new process would know: nothing loaded, no checksum computed."""
    data._load_uint8.cache_clear()
    data._file_digest.cache_clear()


def _digest(s: data.ImageSet) -> str:
    return hashlib.sha256(s.images.numpy().tobytes() + s.labels.numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A cache filled once from the mirror, and the MNIST test split loaded from it."""
    root = tmp_path_factory.mktemp("clean") / "root"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(data.MIRROR_ENV, str(MIRROR))
        mp.setenv(data.ROOT_ENV, str(root))
        _forget()
        test = data.load_mnist("test")
        _forget()
    return root, test


@pytest.fixture
def cache(clean, tmp_path, monkeypatch):
    """A copy of the clean cache, the mirror unset and no network: a repair can only use the cached .gz files."""
    root = tmp_path / "root"
    shutil.copytree(clean[0], root)
    monkeypatch.setenv(data.ROOT_ENV, str(root))
    monkeypatch.delenv(data.MIRROR_ENV, raising=False)

    def no_network(url, *args, **kwargs):
        raise RuntimeError(f"no network for {url}")

    monkeypatch.setattr(data, "download_url", no_network)
    _forget()
    yield root / "MNIST" / "raw"
    _forget()


def test_a_fresh_fill_is_quiet_and_decodes_as_torchvision_does(clean, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv(data.MIRROR_ENV, str(MIRROR))
    monkeypatch.setenv(data.ROOT_ENV, str(tmp_path / "root"))
    _forget()
    test = data.load_mnist("test")
    assert capfd.readouterr().err == ""
    raw = tmp_path / "root" / "MNIST" / "raw"
    assert torch.equal(test.images, read_image_file(str(raw / IMAGES)).unsqueeze(1).float() / 255)
    assert torch.equal(test.labels, read_label_file(str(raw / LABELS)).long())
    assert _digest(test) == _digest(clean[1])
    assert not list(raw.glob(".*")), "no temporary file is left behind"


def _zero_bytes(path: Path):
    path.write_bytes(b"")


def _truncated(path: Path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _bit_flip(path: Path):
    """The first test label, 7, becomes 77 (as in the review); in an image file, the last pixel changes."""
    body = bytearray(path.read_bytes())
    body[8 if "labels" in path.name else -1] ^= 0b1001010
    path.write_bytes(bytes(body))


def _deleted(path: Path):
    path.unlink()


@pytest.mark.parametrize("damage", [_zero_bytes, _truncated, _bit_flip, _deleted])
@pytest.mark.parametrize("unpacked", [IMAGES, LABELS])
def test_a_damaged_unpacked_file_is_repaired_on_the_next_load(cache, clean, capfd, damage, unpacked):
    damage(cache / unpacked)
    test = data.load_mnist("test")
    assert _digest(test) == _digest(clean[1])
    note = capfd.readouterr().err.strip()
    assert len(note.splitlines()) == 1 and "repairing" in note and unpacked in note
    _forget()
    assert _digest(data.load_mnist("test")) == _digest(clean[1])
    assert capfd.readouterr().err == "", "once repaired, the cache is whole"


def test_a_missing_record_and_a_left_over_temporary_file_are_repaired(cache, clean, capfd):
    (cache / data._RECORD).unlink()
    (cache / f".{IMAGES}.k1ll3d.tmp").write_bytes(b"half an unpack")
    assert _digest(data.load_mnist("test")) == _digest(clean[1])
    assert "repairing" in capfd.readouterr().err
    assert (cache / data._RECORD).is_file() and not list(cache.glob(".*.tmp"))


def test_a_file_whose_record_was_changed_with_it_is_repaired_when_it_cannot_be_parsed(cache, clean, capfd):
    """Sizes and checksums agree with a tampered record, but the bytes are not an IDX file: parsing catches it."""
    size = os.path.getsize(cache / LABELS)
    garbage = bytes(range(256)) * (size // 256) + bytes(size % 256)
    (cache / LABELS).write_bytes(garbage)
    record = (cache / data._RECORD).read_text()
    old = data.sha256_of(clean[0] / "MNIST" / "raw" / LABELS)
    (cache / data._RECORD).write_text(record.replace(old, hashlib.sha256(garbage).hexdigest()))
    assert _digest(data.load_mnist("test")) == _digest(clean[1])
    assert "unreadable" in capfd.readouterr().err


def test_an_unpack_stopped_half_way_leaves_no_partial_file(cache, clean, monkeypatch):
    """A stop (Ctrl-C, a kill) during the unpack leaves the final name absent, never a partial file."""
    (cache / IMAGES).unlink()
    real_open = gzip.open

    class Interrupted:
        def __init__(self, *args, **kwargs):
            self.f, self.reads = real_open(*args, **kwargs), 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def read(self, n=-1):
            self.reads += 1
            if self.reads > 2:
                raise KeyboardInterrupt
            return self.f.read(n)

    monkeypatch.setattr(gzip, "open", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.load_mnist("test")
    assert not (cache / IMAGES).exists()
    monkeypatch.setattr(gzip, "open", real_open)
    _forget()
    assert _digest(data.load_mnist("test")) == _digest(clean[1])


def test_a_damaged_cached_gz_is_fetched_again_from_the_mirror(cache, clean, monkeypatch):
    _zero_bytes(cache / IMAGES)
    _bit_flip(cache / (IMAGES + ".gz"))
    monkeypatch.setenv(data.MIRROR_ENV, str(MIRROR))
    assert _digest(data.load_mnist("test")) == _digest(clean[1])
    assert data.sha256_of(cache / (IMAGES + ".gz")) == data.SHA256["mnist"][IMAGES + ".gz"]


def test_a_cache_that_cannot_be_repaired_gives_one_error_naming_the_file_and_the_folder(cache):
    _truncated(cache / IMAGES)
    (cache / (IMAGES + ".gz")).unlink()
    with pytest.raises(data.DataUnavailableError) as info:
        data.load_mnist("test")
    message = str(info.value)
    assert str(cache / IMAGES) in message and f"delete the folder {cache}" in message
    assert "internet" in message and data.MIRROR_ENV in message


def test_a_download_is_checked_before_it_is_used(cache, clean, monkeypatch):
    """Online, the .gz comes through torchvision's download_url; a file with the wrong bytes is never unpacked."""
    _zero_bytes(cache / LABELS)
    (cache / (LABELS + ".gz")).unlink()

    def wrong_file(url, root, filename=None, **kwargs):
        (Path(root) / filename).write_bytes(b"not the published file")

    monkeypatch.setattr(data, "download_url", wrong_file)
    with pytest.raises(data.DataUnavailableError, match="SHA-256"):
        data.load_mnist("test")
    assert (cache / LABELS).stat().st_size == 0 and not (cache / (LABELS + ".gz")).exists()

    def from_mirror(url, root, filename=None, **kwargs):
        shutil.copyfile(MIRROR / "mnist" / "raw" / filename, Path(root) / filename)

    monkeypatch.setattr(data, "download_url", from_mirror)
    _forget()
    assert _digest(data.load_mnist("test")) == _digest(clean[1])


RACER = """
import hashlib, pathlib, sys, time
from condgan_lib import data
ready = pathlib.Path(sys.argv[1])
(ready / sys.argv[2]).touch()
while len(list(ready.iterdir())) < 2:      # start both loads at the same moment
    time.sleep(0.002)
s = data.load_mnist("test")
print(hashlib.sha256(s.images.numpy().tobytes() + s.labels.numpy().tobytes()).hexdigest())
"""


def test_two_processes_filling_one_fresh_cache_both_succeed(clean, tmp_path):
    ready = tmp_path / "ready"
    ready.mkdir()
    env = {**os.environ, data.MIRROR_ENV: str(MIRROR), data.ROOT_ENV: str(tmp_path / "root")}
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(ready), str(i)], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    results = [r.communicate(timeout=240) for r in racers]
    for racer, (out, err) in zip(racers, results):
        assert racer.returncode == 0, err
        assert out.strip() == _digest(clean[1])
        assert "repairing" not in err
