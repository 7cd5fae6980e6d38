"""Reproducibility: one call that seeds every generator and fixes the thread count."""
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
