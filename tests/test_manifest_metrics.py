"""The shipped checkpoints are what the manifest says: every file matches its SHA-256, and every generator's metrics
re-compute to the recorded values (within ``condgan_lib.evaluate.TOLERANCE``) from the same seeds and samples."""
import pytest
import torch

from condgan_lib import evaluate, hub
from condgan_lib.data import DataUnavailableError, sha256_of

pytestmark = pytest.mark.usefixtures("one_thread")

MANIFEST = hub.read_manifest()
GENERATORS = evaluate.measured_names()


def test_the_manifest_lists_shipped_checkpoints():
    assert MANIFEST, "condgan_lib/checkpoints/manifest.json is missing or empty"


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_checkpoint_file_matches_its_manifest_sha256(name):
    path = hub.CHECKPOINT_DIR / MANIFEST[name]["file"]
    assert path.is_file(), f"{name}: {path} is missing"
    assert sha256_of(path) == MANIFEST[name]["sha256"], f"{name}: {path} differs from its manifest entry"


@pytest.mark.parametrize("name", GENERATORS or [pytest.param("none", marks=pytest.mark.skip("no generator shipped"))])
def test_generator_metrics_reproduce(name):
    recorded = MANIFEST[name]["metrics"]
    assert recorded, f"{name}: the manifest records no metrics"
    # a diffusion model runs its U-Net 50 times per image (25 steps, guided), and two threads halve that time; the
    # GANs' small networks are faster on one
    torch.set_num_threads(2 if MANIFEST[name].get("family") == "diffusion" else 1)
    try:
        measured = evaluate.recompute(name)
    except DataUnavailableError as exc:
        pytest.skip(f"the reference images are not available: {exc}")
    finally:
        torch.set_num_threads(1)
    assert measured.get("n") == recorded.get("n", 2000 if "n" in measured else None)
    assert evaluate.compare(recorded, measured) == []
