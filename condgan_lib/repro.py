"""Reproducibility: one call that seeds every generator and fixes the thread count, and seeded RNG objects.

Infrastructure for every chapter; imports nothing else from the package.
"""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int = 0, threads: int | None = 2) -> None:
    """Seed Python, NumPy and PyTorch, and fix PyTorch's CPU thread count (outputs compared in CI depend on it)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``, or from fresh entropy when ``seed`` is None."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ValueError(f"seed must be an integer or None, not {seed!r}")
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen
