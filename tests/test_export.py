"""The ONNX generators the book's page runs in the browser compute what the PyTorch generators compute."""
import json

import pytest
import torch

from condgan_lib import export, hub
from condgan_lib.models import Generator

ort = pytest.importorskip("onnxruntime")  # in requirements.txt; skipped only where it cannot be installed

SHIPPED = export.DEFAULT_OUT   # the files the site serves, committed beside the page
CONDITIONAL = [n for n in export.MODELS if "projection" in n]
UNCONDITIONAL = [n for n in export.MODELS if "dcgan" in n]


def run_onnx(path, z: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"z": z.numpy()} if weights is None else {"z": z.numpy(), "class_weights": weights.numpy()}
    (images,) = session.run(None, feeds)
    return torch.from_numpy(images)


def latents(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 64, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def fresh_export(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("onnx")
    return out, export.export_all(out)


def test_every_exported_model_is_a_generator_of_the_right_kind():
    assert CONDITIONAL and UNCONDITIONAL and set(CONDITIONAL + UNCONDITIONAL) == set(export.MODELS)
    assert all(hub.load_pretrained(n).n_classes == 10 for n in CONDITIONAL)
    assert all(hub.load_pretrained(n).n_classes == 0 for n in UNCONDITIONAL)


@pytest.mark.parametrize("name", CONDITIONAL)
def test_onnx_equals_the_pytorch_generator_for_every_class(fresh_export, name):
    out, index = fresh_export
    G = hub.load_pretrained(name)
    z, labels = latents(20), torch.arange(20) % 10
    with torch.no_grad():
        expected = (G(z, labels) + 1) / 2
    got = run_onnx(out / index[name]["file"], z, torch.eye(10)[labels])
    assert got.shape == (20, 1, 28, 28)
    assert (got - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("name", UNCONDITIONAL)
def test_onnx_equals_an_unconditional_pytorch_generator(fresh_export, name):
    out, index = fresh_export
    G = hub.load_pretrained(name)
    z = latents(16, seed=3)
    with torch.no_grad():
        expected = (G(z) + 1) / 2
    got = run_onnx(out / index[name]["file"], z)
    assert got.shape == (16, 1, 28, 28) and index[name]["classes"] == []
    assert (got - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("name", CONDITIONAL)
def test_mixed_class_weights_interpolate_the_conditional_batch_norm_tables(fresh_export, name):
    out, index = fresh_export
    G = hub.load_pretrained(name)
    z, alpha = latents(4, seed=1), 0.3
    a, b = torch.tensor([1, 3, 4, 0]), torch.tensor([7, 8, 9, 6])
    weights = (1 - alpha) * torch.eye(10)[a] + alpha * torch.eye(10)[b]
    with torch.no_grad():   # the class walk written out with the tables' rows, as the chapter does it
        def cbn(layer, h):
            gain = (1 - alpha) * layer.gain(a) + alpha * layer.gain(b)
            bias = (1 - alpha) * layer.bias(a) + alpha * layer.bias(b)
            return torch.relu(layer.bn(h) * gain[:, :, None, None] + bias[:, :, None, None])
        h = cbn(G.norm1, G.fc(z).view(4, -1, 7, 7))
        expected = (torch.tanh(G.up2(cbn(G.norm2, G.up1(h)))) + 1) / 2
    got = run_onnx(out / index[name]["file"], z, weights)
    assert (got - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("name", export.MODELS)
def test_the_files_the_site_serves_are_current(name):
    """The committed .onnx files match today's checkpoints: re-run `python -m condgan_lib.export` when this fails."""
    index = json.loads((SHIPPED / "models.json").read_text())
    assert index[name]["checkpoint_sha256"] == hub.read_manifest()[name]["sha256"], \
        f"{name}: checkpoint changed since export; run python -m condgan_lib.export"
    G = hub.load_pretrained(name)
    z, labels = latents(10, seed=2), torch.arange(10)
    with torch.no_grad():
        if G.n_classes:
            expected, got = (G(z, labels) + 1) / 2, run_onnx(SHIPPED / index[name]["file"], z, torch.eye(10)[labels])
            assert index[name]["classes"][3] in ("3", "Dress")
        else:
            expected, got = (G(z) + 1) / 2, run_onnx(SHIPPED / index[name]["file"], z)
    assert (got - expected).abs().max().item() < 1e-4
    assert index[name]["z_dim"] == G.z_dim


def test_an_unconditional_generator_is_refused():
    with pytest.raises(ValueError, match="class-conditional"):
        export.MixedClassGenerator(Generator(n_classes=0))


def test_exporting_one_model_again_keeps_the_others_in_the_index(fresh_export):
    out, index = fresh_export
    again = export.export_all(out, names=["mnist-dcgan"])
    assert again == index and json.loads((out / "models.json").read_text()) == index


def test_a_generator_with_a_latent_code_exports_with_its_code(tmp_path):
    torch.manual_seed(0)
    G = Generator(z_dim=64, ch=8, n_codes=10).eval()
    with torch.no_grad():
        for table in (G.norm1.gain, G.norm1.bias, G.norm2.gain, G.norm2.bias):
            table.weight.normal_()   # codes that change the image
    z = latents(12, seed=4)
    with torch.no_grad():
        expected = (G(z) + 1) / 2
    got = run_onnx(export.export_generator(G, tmp_path / "coded.onnx"), z)
    assert (got - expected).abs().max().item() < 1e-4
    assert not G.training  # the exporter left the generator as it found it
    with torch.no_grad():
        assert torch.equal((G(z) + 1) / 2, expected)
