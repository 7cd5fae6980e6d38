"""condgan_lib: the small library behind the book "DALL-E 2, principles and code".

Its modules form layers, and each imports only from the layers below it (``tests/test_imports.py`` keeps it so):

1. infrastructure: ``repro`` (seeds), ``fileio`` (atomic files, locks, git and hardware facts), ``distributed``,
   ``exercises`` (the checks of every chapter's exercises),
   ``viz`` (pictures and ``show_source``);
2. data and recipes: ``data`` (MNIST, Fashion-MNIST), ``shapes`` and ``text`` (captioned scenes), ``configs``;
3. building blocks: ``losses``, ``layers``, ``models``, and ``engine``, the one training loop;
4. ``registry`` (which code trains each kind of model), ``hub`` (shipped checkpoints), ``runs`` (a training run);
5. one module per chapter topic: ``toy``, ``gan``, ``classifier``, ``metrics``, ``probe``, ``text2img``,
   ``clip``, ``diffusion``, ``unclip``;
6. the commands: ``train``, ``evaluate``, ``bench``, ``export`` (``python -m condgan_lib.NAME``).

``import condgan_lib`` loads only what loading a shipped model needs; ``train_or_load`` brings in the training code
when it is first used.
"""
import importlib

from .hub import list_pretrained, load_pretrained
from .repro import seed_everything
from .viz import show_source

__version__ = "0.1.0"
__all__ = ["list_pretrained", "load_pretrained", "train_or_load", "seed_everything", "show_source"]


def __getattr__(name: str):
    """``condgan_lib.train_or_load``, imported on first use (training pulls in TensorBoard and every family)."""
    if name == "train_or_load":
        return importlib.import_module(".runs", __name__).train_or_load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
