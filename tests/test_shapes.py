"""The captioned shape scenes: deterministic by seed, splits that honour the held-out combinations, captions that
say what the image shows, and clear errors for bad arguments."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from condgan_lib import shapes
from condgan_lib.shapes import ATTRIBUTES, COLOUR_WORDS, HELD_OUT, RELATIONS, SHAPE_WORDS, SIZE_WORDS, sample_batch
from condgan_lib.text import tokenize

SEEDS = st.integers(min_value=0, max_value=2**31 - 1)


def test_the_interface_other_chapters_use():
    assert list(ATTRIBUTES) == ["shape", "colour", "size", "position"]
    batch = sample_batch(8, seed=0, two_objects=0.5)
    assert batch.images.shape == (8, 3, 32, 32) and batch.images.dtype == torch.float32
    assert 0 <= batch.images.min() and batch.images.max() <= 1
    assert len(batch.captions) == 8 and all(isinstance(c, str) for c in batch.captions)
    assert batch.attributes.shape == (8, 4) and batch.attributes.dtype == torch.long
    assert batch.second_attributes.shape == (8, 4) and batch.relations.shape == (8,)


def test_same_arguments_same_batch_and_another_seed_another_batch():
    a, b = sample_batch(16, seed=3, two_objects=0.5), sample_batch(16, seed=3, two_objects=0.5)
    assert torch.equal(a.images, b.images) and a.captions == b.captions and torch.equal(a.attributes, b.attributes)
    c = sample_batch(16, seed=4, two_objects=0.5)
    assert not torch.equal(a.images, c.images)


def test_test_split_is_an_independent_stream_of_the_train_distribution():
    train, test = sample_batch(64, seed=0, split="train"), sample_batch(64, seed=0, split="test")
    assert train.captions != test.captions
    held = {(ATTRIBUTES["shape"].index(s), ATTRIBUTES["colour"].index(c)) for s, c in HELD_OUT}
    assert not {tuple(a) for a in test.attributes[:, :2].tolist()} & held


@settings(max_examples=8, deadline=None)
@given(seed=SEEDS, two=st.sampled_from([0.0, 0.5, 1.0]))
def test_train_never_draws_a_held_out_combination_and_heldout_draws_only_them(seed, two):
    held = {(ATTRIBUTES["shape"].index(s), ATTRIBUTES["colour"].index(c)) for s, c in HELD_OUT}
    train = sample_batch(32, seed=seed, split="train", two_objects=two)
    objects = torch.cat([train.attributes, train.second_attributes[train.two_object]])
    assert not {tuple(a) for a in objects[:, :2].tolist()} & held
    heldout = sample_batch(32, seed=seed, split="heldout", two_objects=two)
    assert {tuple(a) for a in heldout.attributes[:, :2].tolist()} <= held


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_every_caption_names_the_attributes_of_its_scene(seed):
    batch = sample_batch(16, seed=seed, two_objects=0.5)
    for caption, first, second, rel in zip(batch.captions, batch.attributes, batch.second_attributes,
                                           batch.relations):
        words = tokenize(caption)
        text = " ".join(words)
        objects = [first] if rel < 0 else [first, second]
        for obj in objects:
            shape, colour, size = (ATTRIBUTES[k][int(v)] for k, v in zip(ATTRIBUTES, obj[:3]))
            assert set(SHAPE_WORDS[shape]) & set(words), (caption, shape)
            assert set(COLOUR_WORDS[colour]) & set(words), (caption, colour)
            assert set(SIZE_WORDS[size]) & set(words), (caption, size)
        if rel < 0:
            vertical, horizontal = ATTRIBUTES["position"][int(first[3])].split()
            assert horizontal in words and ({vertical, {"top": "upper", "bottom": "lower"}[vertical]} & set(words))
        else:
            assert any(phrase in text for phrase in shapes.RELATION_WORDS[RELATIONS[int(rel)]])


def test_two_object_scenes_place_the_objects_as_the_relation_says():
    batch = sample_batch(64, seed=1, two_objects=1.0)
    assert batch.two_object.all()
    for first, second, rel in zip(batch.attributes, batch.second_attributes, batch.relations):
        (r1, c1), (r2, c2) = divmod(int(first[3]), 2), divmod(int(second[3]), 2)
        assert {0: c1 < c2 and r1 == r2, 1: c1 > c2 and r1 == r2, 2: r1 < r2 and c1 == c2,
                3: r1 > r2 and c1 == c2}[int(rel)]
        assert first[0] != second[0] and first[1] != second[1]  # binding is well defined: shapes and colours differ


def test_the_object_is_drawn_in_its_colour_in_its_quadrant_and_nowhere_else():
    batch = sample_batch(32, seed=2)
    for image, (shape, colour, size, position) in zip(batch.images, batch.attributes.tolist()):
        row, col = divmod(position, 2)
        quadrant = image[:, 16 * row:16 * row + 16, 16 * col:16 * col + 16]
        distance = (quadrant - shapes.COLOUR_RGB[colour][:, None, None]).abs().amax(0)
        assert distance.min() < 0.1                                  # some pixel has the object's colour
        opposite = image[:, 16 * (1 - row):16 * (2 - row), 16 * (1 - col):16 * (2 - col)]
        assert opposite.max() < 0.2                                  # the opposite quadrant is background


@pytest.mark.parametrize("kwargs, words", [
    ({"split": "validation"}, "split must be one of"),
    ({"n": 0}, "n must be a positive integer"),
    ({"two_objects": 1.5}, "two_objects must be a fraction"),
    ({"seed": -1}, "seed must be a non-negative integer"),
])
def test_bad_arguments_get_clear_errors(kwargs, words):
    args = {"n": 4, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=words):
        sample_batch(**args)
