"""condgan_lib.viz: the animation player and the result tables the chapters display."""
import re

import pytest
import torch

from condgan_lib import viz


def frames(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(8, 1, 28, 28, generator=g) > 0.7).float() for _ in range(n)]


def test_an_image_animation_embeds_one_small_png_per_frame_and_opens_on_the_chosen_frame():
    shown = frames()
    html = viz.animate(shown, nrow=4, start=4, alt="eight digits").data
    uris = re.findall(r'"(data:image/png;base64,[^"]+)"', html.split("<script>")[1])
    assert len(uris) == 5                                 # the frames, in the player's list
    first = re.search(r'<img src="([^"]+)" alt="eight digits"', html).group(1)
    assert first == uris[4] == viz.png_data_uri(viz.image_grid(shown[4], nrow=4))
    assert 'value="4"' in html and "5/5" in html
    assert max(len(u) for u in uris) < 6000                # a grid at its own pixel size, not a rendered figure


def test_the_same_frames_give_the_same_page_and_other_frames_another_player():
    a, b = viz.animate(frames()).data, viz.animate(frames()).data
    assert a == b                                          # stored outputs do not change when nothing changed
    ids = {re.search(r'id="(cg-player-[0-9a-f]+)"', h).group(1) for h in (a, viz.animate(frames(seed=1)).data)}
    assert len(ids) == 2                                   # two players on one page do not share controls


def test_a_table_reads_the_same_as_text_and_as_html():
    table = viz.Table(["", "n", "FID"], [["mnist-projection", 2000, 23.33], ["real floor", 1000, None]],
                      ["", "d", ".1f"], title="MNIST")
    assert repr(table).splitlines() == ["MNIST", "                     n   FID",
                                        "mnist-projection  2000  23.3", "real floor        1000"]
    html = table._repr_html_()
    assert html.count("<tr>") == 3 and "<caption>MNIST</caption>" in html and ">23.3</td>" in html


def test_a_table_with_a_missing_cell_says_how_many_it_needs():
    with pytest.raises(ValueError, match="3 cells"):
        viz.Table(["", "n", "FID"], [["x", 1]])


def test_a_compact_figure_is_a_smaller_palette_png_of_the_same_size():
    import io

    import matplotlib
    import matplotlib.pyplot as plt
    from PIL import Image
    matplotlib.use("agg")
    fig, ax = plt.subplots(figsize=(4, 2))
    viz.show_images(frames(1)[0], nrow=8, ax=ax)
    plain = io.BytesIO()
    fig.savefig(plain, format="png", bbox_inches="tight")
    compact = viz.compact_png(fig)
    plt.close(fig)
    image = Image.open(io.BytesIO(compact))
    assert image.mode == "P" and image.size == Image.open(plain).size and len(compact) < 0.8 * len(plain.getvalue())


def test_a_figure_wider_than_the_column_is_redrawn_to_fit_with_its_fonts_kept():
    import io

    import matplotlib
    import matplotlib.pyplot as plt
    from PIL import Image
    matplotlib.use("agg")
    fig, axes = plt.subplots(1, 4, figsize=(14, 2.5))
    for ax in axes:
        ax.plot([0, 1], [1, 0])
        ax.set_title("a title", fontsize=viz.MIN_FONT_PT)
    image = Image.open(io.BytesIO(viz.compact_png(fig)))
    plt.close(fig)
    assert image.size[0] <= viz.COLUMN_PX
    # 9 pt at the figure's 100 dpi: 12.5 px, whatever the figure's width was
    assert float(image.text["min_font_px"]) == pytest.approx(viz.MIN_FONT_PT * 100 / 72, abs=0.01)
