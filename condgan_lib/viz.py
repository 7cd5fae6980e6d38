"""Pictures shared by every chapter: image grids, sample sheets, animations, and the library's own source."""
from __future__ import annotations

import base64
import hashlib
import inspect
import io
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from IPython import get_ipython
from IPython.display import HTML, Markdown, display
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib import animation

# the text column of a chapter page at 1280 px is 790 px wide: a figure wider than this is shrunk by the browser,
# and its text with it; at 100 dpi a 9 pt font is 12.5 px, the smallest text a figure shows (9 pt on the page)
COLUMN_PX = 780
MIN_FONT_PT = 9


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """Tile ``[N, C, H, W]`` images in [0, 1] into one ``[H', W', C]`` array ready for ``imshow``."""
    if images.dim() != 4:
        raise ValueError(f"expected images of shape [N, C, H, W], got {tuple(images.shape)}")
    from torchvision.utils import make_grid  # torchvision loads in 1.5 s; the commands rarely need it

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
        ax.set_yticklabels(row_labels, fontsize=MIN_FONT_PT)
        ax.tick_params(length=0)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def class_sample_sheet(generate: Callable[[torch.Tensor, int], torch.Tensor], per_class: int = 8,
                       n_classes: int = 10, seed: int = 0) -> torch.Tensor:
    """Images for a sheet with one row per class: ``generate(labels, seed)`` is a conditional generator's method."""
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return generate(labels, seed)


def png_data_uri(grid: torch.Tensor) -> str:
    """A ``[H, W, C]`` image in [0, 1] as a ``data:`` URI of a PNG at its own pixel size: one grey channel when the
    colour channels agree, else a palette of at most 256 colours."""
    pixels = (grid.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    grey = pixels.shape[-1] == 1 or (pixels == pixels[..., :1]).all()
    png = small_png(Image.fromarray(pixels[..., 0] if grey else pixels))
    return "data:image/png;base64," + base64.b64encode(png).decode()


def small_png(image: Image.Image, info: PngInfo | None = None) -> bytes:
    """``image`` as an optimised PNG: grey images as they are, colour ones as a palette of at most 256 colours;
    ``info`` adds text chunks."""
    if image.mode != "L":
        image = image.convert("RGB").quantize(256, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, "png", optimize=True, pnginfo=info)
    return buffer.getvalue()


def smallest_font_pt(fig: Figure) -> float | None:
    """The smallest font size (points) of any visible, non-empty text in ``fig`` (None when it has no text)."""
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return min(sizes) if sizes else None


def _tight_png(fig: Figure) -> Image.Image:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return Image.open(buffer)


def compact_png(fig: Figure) -> bytes:
    """A figure as the notebook shows it (tight bounding box), stored as a palette PNG of at most 256 colours: the
    same picture at a fraction of matplotlib's RGBA bytes.

    A figure wider than the page's text column (``COLUMN_PX``) is redrawn narrower with its fonts kept, so that the
    page shows it at its own size and its text stays readable. The PNG records the smallest text it holds, in pixels
    (``min_font_px``), which the site test reads to check that no figure's text is under ``MIN_FONT_PT`` as shown."""
    image = _tight_png(fig)
    for _ in range(3):   # text keeps its size while the axes shrink, so the width converges in a few redraws
        if image.size[0] <= COLUMN_PX:
            break
        width, height = fig.get_size_inches()
        scale = COLUMN_PX / image.size[0] * 0.98
        fig.set_size_inches(width * scale, height * scale)
        image = _tight_png(fig)
    font = smallest_font_pt(fig)
    info = PngInfo()
    if font is not None:
        info.add_text("min_font_px", f"{font * fig.dpi / 72:.2f}")
    return small_png(image, info)


def use_compact_figures() -> None:
    """Show matplotlib figures in this notebook as ``compact_png`` (call it after ``%matplotlib inline``), so that
    the pages stay light; outside IPython it does nothing."""
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, compact_png)


PLAYER = """<div class="cg-player" id="{id}" style="max-width:{width}px">
<img src="{first}" alt="{alt}" style="width:100%;image-rendering:pixelated;display:block">
<div style="display:flex;gap:.6em;align-items:center;font-size:.85em">
<button type="button" aria-label="play">&#9654;</button>
<input type="range" min="0" max="{last}" value="{start}" aria-label="frame" style="flex:1">
<span>{start1}/{count}</span></div>
<script>(() => {{
  const root = document.getElementById("{id}"), frames = {frames};
  const img = root.querySelector("img"), slider = root.querySelector("input"), label = root.querySelector("span");
  const button = root.querySelector("button");
  let timer = null;
  const show = i => {{ img.src = frames[i]; slider.value = i; label.textContent = (i + 1) + "/" + frames.length; }};
  const stop = () => {{ clearInterval(timer); timer = null; button.innerHTML = "&#9654;"; }};
  slider.addEventListener("input", () => {{ stop(); show(+slider.value); }});
  button.addEventListener("click", () => {{
    if (timer) return stop();
    let i = +slider.value >= frames.length - 1 ? 0 : +slider.value;
    show(i); button.innerHTML = "&#10074;&#10074;";
    timer = setInterval(() => {{ i += 1; if (i >= frames.length) return stop(); show(i); }}, {interval});
  }});
}})();</script></div>"""


def image_player(grids: Sequence[torch.Tensor], interval: int = 200, width: int = 400, start: int = 0,
                 alt: str = "animation") -> HTML:
    """A small player for image frames in a static page: each frame is a PNG at its own pixel size, scaled up
    without blurring; a play button and a slider. The page shows frame ``start`` before anything is pressed."""
    uris = [png_data_uri(g) for g in grids]
    ident = "cg-player-" + hashlib.sha256("".join(uris).encode()).hexdigest()[:12]   # the same for the same frames
    return HTML(PLAYER.format(id=ident, width=width, first=uris[start], alt=alt.replace('"', "&quot;"),
                              last=len(uris) - 1, start=start, start1=start + 1, count=len(uris),
                              frames="[" + ",".join(f'"{u}"' for u in uris) + "]", interval=interval))


def animate(frames: Sequence[Callable[[plt.Axes], None]] | Sequence[torch.Tensor], interval: int = 200,
            figsize=(4, 4), nrow: int = 8, start: int = 0, alt: str = "animation"):
    """An animation that plays in a static HTML page.

    Image batches are tiled into grids and played by ``image_player`` (a few kilobytes a frame); callables that draw
    one frame on an axes are drawn by matplotlib (``to_jshtml``). ``figsize[0]`` sets the displayed width and
    ``start`` the frame a reader sees first.
    """
    if all(isinstance(frame, torch.Tensor) for frame in frames):
        return image_player([image_grid(f, nrow=nrow) for f in frames], interval, int(figsize[0] * 100), start, alt)
    fig, ax = plt.subplots(figsize=figsize)

    def draw(i):
        ax.clear()
        frames[i](ax)

    anim = animation.FuncAnimation(fig, draw, frames=len(frames), interval=interval)
    alt_text = alt.replace('"', "&quot;")
    html = HTML(anim.to_jshtml(default_mode="once").replace("<img id=", f'<img alt="{alt_text}" id=', 1))
    plt.close(fig)
    return html


def show_source(obj) -> None:
    """Display the source code of a library function or class in the page, from its single source."""
    display(Markdown(f"```python\n{inspect.getsource(obj).rstrip()}\n```"))


class Table:
    """A table of results: an HTML table in the page, aligned text in a terminal and in the notebook's text output.

    ``rows`` are lists of cells (strings, or numbers formatted with ``formats[column]``, e.g. ``".3f"``); ``None`` is an
    empty cell. The first column is the row's name, left-aligned; the others are right-aligned.
    """

    def __init__(self, header: Sequence[str], rows: Sequence[Sequence], formats: Sequence[str] | None = None,
                 title: str | None = None):
        formats = list(formats or [""] * len(header))
        if any(len(r) != len(header) for r in rows) or len(formats) != len(header):
            raise ValueError(f"every row and the formats need {len(header)} cells, one per column of {list(header)}")
        self.header, self.title = [str(h) for h in header], title
        self.rows = [["" if v is None else v if isinstance(v, str) else format(v, f) for v, f in zip(r, formats)]
                     for r in rows]

    def __repr__(self) -> str:
        widths = [max(len(x) for x in col) for col in zip(self.header, *self.rows)]
        line = lambda r: "  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths)))
        return "\n".join(([self.title] if self.title else []) + [line(self.header).rstrip()]
                         + [line(r).rstrip() for r in self.rows])

    def _repr_html_(self) -> str:
        esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        cell = lambda tag, x, i: f'<{tag} style="text-align:{"left" if i == 0 else "right"}">{esc(x)}</{tag}>'
        head = "".join(cell("th", h, i) for i, h in enumerate(self.header))
        body = "".join("<tr>" + "".join(cell("td", x, i) for i, x in enumerate(r)) + "</tr>" for r in self.rows)
        caption = f"<caption>{esc(self.title)}</caption>" if self.title else ""
        return (f'<table class="cg-table">{caption}<thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>")
