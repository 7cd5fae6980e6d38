"""Captioned shape scenes, generated on the fly: the book's text-to-image dataset, with no download.

A scene is a 32x32 RGB image of one or two flat shapes on a dark background. Each object has four attributes, and
a caption from a small English grammar (synonyms, varied word order) describes all of them:

    "a small red circle in the top left"              one object: shape, colour, size, position
    "to the right of a small blue wedge there is a big emerald box"   two objects and their relation

Because the renderer knows what it drew, text-image alignment is measurable: a probe (``condgan_lib.probe``)
reads the attributes back from any image. Some shape-colour combinations (``HELD_OUT``) never appear in training,
so a text-to-image model can be tested on combinations it has never seen (compositional generalisation).

Public interface (stable; other chapters build on it):

- ``ATTRIBUTES: dict[str, tuple[str, ...]]``: keys in order "shape", "colour", "size", "position".
- ``RELATIONS``: the spatial relations of two-object captions ("left of", "right of", "above", "below").
- ``HELD_OUT``: the (shape, colour) combinations never drawn by the "train" and "test" splits.
- ``sample_batch(n, seed, split="train", two_objects=0.0) -> ShapesBatch`` with fields
  ``images`` (FloatTensor [n, 3, 32, 32] in [0, 1]), ``captions`` (list[str]), ``attributes`` (LongTensor [n, 4],
  indices into ATTRIBUTES of the first or only object, the subject of the caption), ``second_attributes``
  (LongTensor [n, 4], the other object of a two-object scene, all -1 for one-object scenes) and ``relations``
  (LongTensor [n], index into RELATIONS of "first RELATION second", -1 for one-object scenes).
  Splits: "train" excludes HELD_OUT, "heldout" draws the first object only from HELD_OUT, "test" is an
  independent seed stream of the train distribution. Same (n, seed, split, two_objects), same batch.
- ``render(...)`` draws scenes from attribute tensors; ``caption_for(...)`` writes one caption.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

IMAGE_SIZE = 32

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": ("circle", "square", "triangle"),
    "colour": ("red", "green", "blue", "yellow", "purple"),
    "size": ("small", "big"),
    "position": ("top left", "top right", "bottom left", "bottom right"),   # quadrant = 2 * row + column
}
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")

# (shape, colour) pairs the generator never sees in training; every shape and every colour still appears elsewhere.
HELD_OUT: tuple[tuple[str, str], ...] = (("triangle", "red"), ("circle", "blue"), ("square", "yellow"))
HELD_OUT_KEYS: tuple[str, str] = ("shape", "colour")

SPLITS = ("train", "test", "heldout")

# --------------------------------------------------------------------------------------------------- the grammar

SHAPE_WORDS = {"circle": ("circle", "disc", "dot"), "square": ("square", "box", "block"),
               "triangle": ("triangle", "wedge")}
COLOUR_WORDS = {"red": ("red", "scarlet", "crimson"), "green": ("green", "emerald"), "blue": ("blue", "azure"),
                "yellow": ("yellow", "golden"), "purple": ("purple", "violet")}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "big": ("big", "large", "huge")}
VERTICAL_WORDS = {"top": ("top", "upper"), "bottom": ("bottom", "lower")}
RELATION_WORDS = {"left of": ("to the left of", "left of", "on the left of"),
                  "right of": ("to the right of", "right of", "on the right of"),
                  "above": ("above", "over", "on top of"),
                  "below": ("below", "under", "beneath")}
POSITION_TEMPLATES = ("in the {v} {h}", "in the {v} {h} corner", "at the {v} {h}", "at the {v0} on the {h}",
                      "on the {h} at the {v0}")
ONE_OBJECT_TEMPLATES = ("{np} {pos}", "{pos} there is {np}", "there is {np} {pos}", "{np_coloured} {pos}",
                        "{np_sized} {pos}")
TWO_OBJECT_TEMPLATES = ("{np1} {rel} {np2}", "there is {np1} {rel} {np2}", "{rel} {np2} there is {np1}",
                        "{np1} is {rel} {np2}")


def _article(next_word: str, rng: np.random.Generator) -> str:
    if rng.random() < 0.2:
        return "one"
    return "an" if next_word[0] in "aeiou" else "a"


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def _noun_phrase(shape: str, colour: str, size: str, rng: np.random.Generator, style: str = "plain") -> str:
    """"a small red circle" (plain), "a small circle coloured red" (coloured) or "a red circle of small size" (sized)."""
    s, c, z = _pick(rng, SHAPE_WORDS[shape]), _pick(rng, COLOUR_WORDS[colour]), _pick(rng, SIZE_WORDS[size])
    if style == "coloured":
        return f"{_article(z, rng)} {z} {s} coloured {c}"
    if style == "sized":
        return f"{_article(c, rng)} {c} {s} of {z} size"
    return f"{_article(z, rng)} {z} {c} {s}"


def _position_phrase(position: str, rng: np.random.Generator) -> str:
    v0, h = position.split()
    return _pick(rng, POSITION_TEMPLATES).format(v=_pick(rng, VERTICAL_WORDS[v0]), v0=v0, h=h)


def caption_for(first: tuple[str, str, str, str], rng: np.random.Generator,
                second: tuple[str, str, str, str] | None = None, relation: str | None = None) -> str:
    """One caption for a scene: ``first``/``second`` are (shape, colour, size, position) names."""
    shape, colour, size, position = first
    if second is None:
        template = _pick(rng, ONE_OBJECT_TEMPLATES)
        return template.format(np=_noun_phrase(shape, colour, size, rng),
                               np_coloured=_noun_phrase(shape, colour, size, rng, "coloured"),
                               np_sized=_noun_phrase(shape, colour, size, rng, "sized"),
                               pos=_position_phrase(position, rng))
    template = _pick(rng, TWO_OBJECT_TEMPLATES)
    return template.format(np1=_noun_phrase(shape, colour, size, rng), np2=_noun_phrase(*second[:3], rng),
                           rel=_pick(rng, RELATION_WORDS[relation]))


def grammar_words() -> set[str]:
    """Every word the grammar can produce (the default vocabulary of ``condgan_lib.text``)."""
    words = {"a", "an", "one", "there", "is", "in", "the", "at", "on", "corner", "coloured", "of", "size",
             "left", "right", "top", "bottom"}
    for table in (SHAPE_WORDS, COLOUR_WORDS, SIZE_WORDS, VERTICAL_WORDS, RELATION_WORDS):
        for options in table.values():
            for phrase in options:
                words.update(phrase.split())
    return words


# ----------------------------------------------------------------------------------------------- the renderer

COLOUR_RGB = torch.tensor([[0.90, 0.15, 0.15], [0.15, 0.75, 0.20], [0.20, 0.35, 0.95], [0.95, 0.85, 0.15],
                           [0.65, 0.25, 0.85]])
SIZE_RANGE = ((4.0, 5.0), (6.5, 7.5))        # half-width in pixels of small and big objects
JITTER = (2.0, 0.5)                           # how far (pixels) a small / big object may move from its quadrant centre
BACKGROUND = 0.08


def render(shapes: torch.Tensor, colours: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor,
           angles: torch.Tensor, tints: torch.Tensor, present: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Draw scenes: every argument has a leading ``[n, k]`` (k object slots, painted in order).

    ``shapes``/``colours`` index ATTRIBUTES, ``centres`` [n, k, 2] are (x, y) pixels, ``radii`` half-widths,
    ``angles`` rotations in radians, ``tints`` [n, k, 3] colour offsets, ``present`` a bool mask, ``background``
    [n] grey levels. Edges are anti-aliased from signed distances. Returns ``[n, 3, 32, 32]`` in [0, 1].
    """
    n, k = shapes.shape
    coords = torch.arange(IMAGE_SIZE, dtype=torch.float32) + 0.5
    py, px = torch.meshgrid(coords, coords, indexing="ij")                          # [32, 32]
    image = background[:, None, None, None].expand(n, 3, IMAGE_SIZE, IMAGE_SIZE).clone()
    for slot in range(k):
        dx = px - centres[:, slot, 0, None, None]                                    # [n, 32, 32]
        dy = py - centres[:, slot, 1, None, None]
        cos, sin = torch.cos(angles[:, slot])[:, None, None], torch.sin(angles[:, slot])[:, None, None]
        x, y = cos * dx + sin * dy, -sin * dx + cos * dy                             # rotate into the object's frame
        r = radii[:, slot, None, None]
        circle = torch.sqrt(dx ** 2 + dy ** 2) - r
        square = torch.maximum(x.abs(), y.abs()) - r * 0.9
        inradius = 2 * r / 3                                                          # triangle of height 2r
        yc = y - inradius / 2                                                         # centroid below the box centre
        triangle = torch.maximum(yc, 0.866 * x.abs() - 0.5 * yc) - inradius
        distance = torch.stack([circle, square, triangle], 1).gather(1, shapes[:, slot, None, None, None]
                                                                      .expand(n, 1, IMAGE_SIZE, IMAGE_SIZE))
        alpha = (0.5 - distance).clamp(0, 1) * present[:, slot, None, None, None]   # [n, 1, 32, 32]
        rgb = (COLOUR_RGB[colours[:, slot]] + tints[:, slot]).clamp(0, 1)[:, :, None, None]
        image = image * (1 - alpha) + rgb * alpha
    return image.clamp(0, 1)


# ------------------------------------------------------------------------------------------------ the sampler

@dataclass
class ShapesBatch:
    """A batch of captioned scenes (see the module docstring for the fields)."""
    images: torch.Tensor             # [n, 3, 32, 32] in [0, 1]
    captions: list[str]
    attributes: torch.Tensor         # [n, 4] long: shape, colour, size, position of the first (or only) object
    second_attributes: torch.Tensor  # [n, 4] long: the second object, -1 in one-object scenes
    relations: torch.Tensor          # [n] long: index into RELATIONS of "first RELATION second", -1 for one object

    @property
    def two_object(self) -> torch.Tensor:
        """Bool mask of the two-object scenes."""
        return self.relations >= 0

    def __len__(self) -> int:
        return len(self.captions)


def _held_out_pairs() -> set[tuple[int, int]]:
    return {(ATTRIBUTES["shape"].index(s), ATTRIBUTES["colour"].index(c)) for s, c in HELD_OUT}


def is_held_out(shape: int, colour: int) -> bool:
    """Whether a (shape index, colour index) combination is one of ``HELD_OUT``."""
    return (shape, colour) in _held_out_pairs()


def _split_rng(seed: int, split: str) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    return np.random.default_rng([int(seed), SPLITS.index(split), 20160517])   # independent stream per split


def _shape_colour(rng: np.random.Generator, split: str, avoid: tuple[int, int] | None = None) -> tuple[int, int]:
    """A (shape, colour) pair allowed in ``split``; ``avoid`` = (shape, colour) of the other object, both differ."""
    held = _held_out_pairs()
    if split == "heldout" and avoid is None:
        return sorted(held)[int(rng.integers(len(held)))]
    while True:
        s, c = int(rng.integers(len(ATTRIBUTES["shape"]))), int(rng.integers(len(ATTRIBUTES["colour"])))
        if (s, c) in held or (avoid is not None and (s == avoid[0] or c == avoid[1])):
            continue
        return s, c


def _relation_positions(relation: int, rng: np.random.Generator) -> tuple[int, int]:
    """Quadrants of the first and second object for "first RELATION second"."""
    other = int(rng.integers(2))                               # the free row (left/right) or column (above/below)
    if relation in (0, 1):                                     # left of / right of: same row
        first_col = 0 if relation == 0 else 1
        return 2 * other + first_col, 2 * other + 1 - first_col
    first_row = 0 if relation == 2 else 1                      # above / below: same column
    return 2 * first_row + other, 2 * (1 - first_row) + other


def sample_batch(n: int, seed: int, split: str = "train", two_objects: float = 0.0) -> ShapesBatch:
    """``n`` captioned scenes, a pure function of its arguments; ``two_objects`` is the share of two-object scenes."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    if not 0.0 <= two_objects <= 1.0:
        raise ValueError(f"two_objects must be a fraction in [0, 1], not {two_objects!r}")
    rng = _split_rng(seed, split)
    names = {key: values for key, values in ATTRIBUTES.items()}
    first = np.full((n, 4), -1, dtype=np.int64)
    second = np.full((n, 4), -1, dtype=np.int64)
    relations = np.full(n, -1, dtype=np.int64)
    captions = []
    for i in range(n):
        s, c = _shape_colour(rng, split)
        first[i, :3] = s, c, int(rng.integers(2))
        if rng.random() < two_objects:
            relations[i] = int(rng.integers(len(RELATIONS)))
            first[i, 3], second[i, 3] = _relation_positions(int(relations[i]), rng)
            s2, c2 = _shape_colour(rng, "train", avoid=(s, c))
            second[i, :3] = s2, c2, int(rng.integers(2))
            obj1 = tuple(names[k][v] for k, v in zip(ATTRIBUTES, first[i]))
            obj2 = tuple(names[k][v] for k, v in zip(ATTRIBUTES, second[i]))
            captions.append(caption_for(obj1, rng, obj2, RELATIONS[relations[i]]))
        else:
            first[i, 3] = int(rng.integers(4))
            captions.append(caption_for(tuple(names[k][v] for k, v in zip(ATTRIBUTES, first[i])), rng))
    objects = np.stack([first, second], 1)                               # [n, 2, 4]
    present = objects[:, :, 0] >= 0
    safe = np.where(objects >= 0, objects, 0)
    size_lo = np.array([r[0] for r in SIZE_RANGE])[safe[:, :, 2]]
    size_hi = np.array([r[1] for r in SIZE_RANGE])[safe[:, :, 2]]
    radii = rng.uniform(size_lo, size_hi)
    jitter = np.array(JITTER)[safe[:, :, 2]][..., None] * rng.uniform(-1, 1, (n, 2, 2))
    quadrant = safe[:, :, 3]
    centres = np.stack([8.0 + 16 * (quadrant % 2), 8.0 + 16 * (quadrant // 2)], -1) + jitter
    angles = rng.uniform(-0.3, 0.3, (n, 2))
    tints = rng.uniform(-0.08, 0.08, (n, 2, 3))
    background = BACKGROUND + rng.uniform(-0.04, 0.04, n)

    def t(a, dtype=torch.float32):
        return torch.as_tensor(a, dtype=dtype)

    images = render(t(safe[:, :, 0], torch.long), t(safe[:, :, 1], torch.long), t(centres), t(radii), t(angles),
                    t(tints), t(present, torch.bool), t(background))
    return ShapesBatch(images=images, captions=captions, attributes=torch.from_numpy(first),
                       second_attributes=torch.from_numpy(second), relations=torch.from_numpy(relations))


def describe(attributes: torch.Tensor) -> str:
    """Attribute indices ``[4]`` as words, e.g. "small red circle, top left"."""
    a = [ATTRIBUTES[k][int(v)] for k, v in zip(ATTRIBUTES, attributes)]
    return f"{a[2]} {a[1]} {a[0]}, {a[3]}"
