"""Pictures shared by every chapter: image grids, sample sheets, animations, and the library's own source."""
from __future__ import annotations

import inspect
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import torch
from IPython.display import HTML, Markdown, display
from matplotlib import animation
from torchvision.utils import make_grid


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """Tile ``[N, C, H, W]`` images in [0, 1] into one ``[H', W', C]`` array ready for ``imshow``."""
    if images.dim() != 4:
        raise ValueError(f"expected images of shape [N, C, H, W], got {tuple(images.shape)}")
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=padding, pad_value=1.0)
    return grid.permute(1, 2, 0)


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None,
                row_labels: Sequence[str] | None = None, size: float = 0.5):
    """Draw a grid of images (grey or RGB) on ``ax`` (a new figure when ``None``); returns the axes."""
    grid = image_grid(images, nrow=nrow)
    if ax is None:
        rows = -(-images.shape[0] // nrow)
        _, ax = plt.subplots(figsize=(max(2.0, size * nrow), max(1.0, size * rows)))
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if row_labels is not None:
        cell = grid.shape[0] / len(row_labels)
        ax.set_yticks([cell * (i + 0.5) for i in range(len(row_labels))])
        ax.set_yticklabels(row_labels, fontsize=8)
        ax.tick_params(length=0)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def class_sample_sheet(generate: Callable[[torch.Tensor, int], torch.Tensor], per_class: int = 8,
                       n_classes: int = 10, seed: int = 0) -> torch.Tensor:
    """Images for a sheet with one row per class: ``generate(labels, seed)`` is a conditional generator's method."""
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return generate(labels, seed)


def animate(frames: Sequence[Callable[[plt.Axes], None]] | Sequence[torch.Tensor], interval: int = 200,
            figsize=(4, 4), nrow: int = 8):
    """An animation that plays in a static HTML page (matplotlib's ``to_jshtml``).

    ``frames`` are either image batches (drawn as grids) or callables that draw one frame on an axes.
    """
    fig, ax = plt.subplots(figsize=figsize)

    def draw(i):
        ax.clear()
        frame = frames[i]
        if isinstance(frame, torch.Tensor):
            show_images(frame, nrow=nrow, ax=ax)
        else:
            frame(ax)

    anim = animation.FuncAnimation(fig, draw, frames=len(frames), interval=interval)
    html = HTML(anim.to_jshtml(default_mode="once"))
    plt.close(fig)
    return html


def show_source(obj) -> None:
    """Display the source code of a library function or class in the page, from its single source."""
    display(Markdown(f"```python\n{inspect.getsource(obj).rstrip()}\n```"))
