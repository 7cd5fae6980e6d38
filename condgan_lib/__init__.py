"""condgan_lib: the small library behind the book "DALL-E 2, principles and code".

Topic modules: ``data`` (MNIST / Fashion-MNIST), ``models``, ``losses``, ``configs``, ``train`` (the training
command), ``classifier`` and ``metrics`` (measuring generators), ``hub`` (shipped checkpoints), ``viz`` (pictures),
``toy`` (the 2-D GAN of the first chapter), ``repro`` (seeds and threads).
"""
from .hub import list_pretrained, load_pretrained, train_or_load
from .repro import seed_everything
from .viz import show_source

__version__ = "0.1.0"
__all__ = ["list_pretrained", "load_pretrained", "train_or_load", "seed_everything", "show_source"]
