"""The export command (page "Explore the generator in your browser", chapter "Class-conditional GANs"): shipped
generators to ONNX, so that a web page can run them in the reader's browser.

A class-conditional generator's graph takes two inputs and returns images:

- ``z``: latents, ``float32 [N, z_dim]``;
- ``class_weights``: ``float32 [N, n_classes]``, a mixture of classes. A one-hot row asks for one class and gives
  exactly ``G(z, y)``; the row ``(1 - alpha) e_a + alpha e_b`` mixes the conditional batch norm tables of classes
  ``a`` and ``b``, the class walk of the chapter on class-conditional GANs;
- ``images``: ``float32 [N, 1, 28, 28]`` in [0, 1].

The class enters the generator only through conditional batch norm (de Vries et al., 2017), whose scale and shift are
rows of two tables; a weighted sum of rows is ``class_weights @ table``, one matrix product, so one graph serves both
the class slider and the class walk. An unconditional generator (a DCGAN) takes ``z`` only.

Run ``python -m condgan_lib.export`` to write ``book/_static/explore/``: one ``.onnx`` file per model and
``models.json``, which records each model's class names (none for an unconditional one), latent size and the SHA-256
of the checkpoint it came from.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from .data import CLASS_NAMES
from .hub import CheckpointError, load_pretrained, read_manifest
from .models import ConditionalBatchNorm2d, Generator

MODELS = ("mnist-projection", "fashion-projection", "mnist-dcgan", "fashion-dcgan")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "book" / "_static" / "explore"
OPSET = 17  # the opset the page's interpreter (book/_static/explore/tinyonnx.js) and onnxruntime read


def mixed_cbn(layer: ConditionalBatchNorm2d, h: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """Conditional batch norm with scale and shift ``class_weights @ table``: a one-hot row is one class."""
    gain = class_weights @ layer.gain.weight
    bias = class_weights @ layer.bias.weight
    return layer.bn(h) * gain[:, :, None, None] + bias[:, :, None, None]


class MixedClassGenerator(nn.Module):
    """A conditional ``Generator`` driven by class weights instead of labels; images in [0, 1]."""

    def __init__(self, generator: Generator):
        super().__init__()
        if not generator.n_classes:
            raise ValueError("only a class-conditional generator (n_classes > 0) can be exported for the page")
        self.g = generator.eval()

    def forward(self, z: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
        g = self.g
        h = g.fc(z).view(z.shape[0], -1, 7, 7)
        h = torch.relu(mixed_cbn(g.norm1, h, class_weights))
        h = torch.relu(mixed_cbn(g.norm2, g.up1(h), class_weights))
        return (torch.tanh(g.up2(h)) + 1) / 2


class ImageGenerator(nn.Module):
    """An unconditional ``Generator`` with images in [0, 1]."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.g = generator.eval()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.g(z) + 1) / 2


def export_generator(generator: Generator, path: str | Path) -> Path:
    """Write ``generator`` to ``path`` as an ONNX model with a dynamic batch size; the generator keeps its mode."""
    was_training = generator.training
    if generator.n_classes:
        model, inputs = MixedClassGenerator(generator), ["z", "class_weights"]
        example = (torch.zeros(2, generator.z_dim), torch.eye(generator.n_classes)[:2])
    else:
        model, inputs, example = ImageGenerator(generator), ["z"], (torch.zeros(2, generator.z_dim),)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The TorchScript exporter (dynamo=False) writes this small feed-forward graph with no extra dependency.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, example, str(path), input_names=inputs, output_names=["images"],
                          dynamic_axes={key: {0: "n"} for key in [*inputs, "images"]},
                          opset_version=OPSET, dynamo=False)
    generator.train(was_training)  # the exporter puts the wrapper back in training mode, and the generator with it
    return path


def check_exportable(name: str) -> None:
    """A ValueError unless ``name`` is a shipped 28x28 generator of the conditional or DCGAN chapters."""
    manifest = read_manifest()
    exportable = sorted(n for n, e in manifest.items() if e.get("kind") == "Generator")
    if name not in manifest:
        raise ValueError(f"no shipped model named {name!r}; the page can run: {', '.join(exportable)}")
    if name not in exportable:
        raise ValueError(f"{name!r} is a {manifest[name].get('kind')}, not one of the 28x28 generators the page runs "
                         f"({', '.join(exportable)})")


def default_out() -> Path:
    """``book/_static/explore`` of the checkout the package is imported from; a ValueError for an installed copy."""
    if not (DEFAULT_OUT.parent.parent.is_dir() and (DEFAULT_OUT.parents[2] / "_config.yml").is_file()):
        raise ValueError(f"condgan_lib is installed, not in a checkout of the book ({DEFAULT_OUT.parents[2]} has no "
                         f"book/ and _config.yml): pass --out FOLDER")
    return DEFAULT_OUT


def export_all(out_dir: str | Path | None = None, names=MODELS) -> dict:
    """Export every model in ``names`` to ``out_dir`` and write ``models.json``; returns that index. Models already
    in the folder's ``models.json`` and not in ``names`` keep their entries, so that one model can be exported again
    alone."""
    out_dir = Path(out_dir) if out_dir is not None else default_out()
    for name in names:
        check_exportable(name)
    manifest = read_manifest()
    index_path = out_dir / "models.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    for name in names:
        generator = load_pretrained(name)
        path = export_generator(generator, out_dir / f"{name}.onnx")
        entry = manifest[name]
        dataset = entry["config"]["dataset"]
        index[name] = {"file": path.name, "dataset": dataset,
                       "classes": CLASS_NAMES[dataset] if generator.n_classes else [],
                       "z_dim": entry["config"]["z_dim"], "checkpoint_sha256": entry["sha256"],
                       "bytes": path.stat().st_size}
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m condgan_lib.export", description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for the .onnx files and models.json (default: book/_static/explore "
                                      "of the checkout)")
    parser.add_argument("names", nargs="*", default=list(MODELS), help="shipped generators to export")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        if importlib.util.find_spec("onnx") is None:
            raise ValueError("exporting needs the onnx package: pip install 'condgan_lib[export]' (or pip install onnx)")
        index = export_all(args.out, args.names)
    except (ValueError, CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else DEFAULT_OUT
    for name in args.names:
        print(f"{name}: {out / index[name]['file']} ({index[name]['bytes'] / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
