"""Tokenizer, vocabulary and text encoder: every grammar caption encodes and decodes back, unknown words and empty
captions get errors that say what is wrong, and padding never changes a caption's embedding."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from condgan_lib.shapes import sample_batch
from condgan_lib.text import VOCAB, EmptyCaptionError, TextEncoder, UnknownWordError, Vocabulary, tokenize


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("A small, RED circle!  In the top-left.") == ["a", "small", "red", "circle", "in", "the", "top",
                                                                 "left"]


def test_encode_pads_with_zero_to_the_longest_caption():
    tokens = VOCAB.encode(["a red circle", "a small red circle in the top left"])
    assert tokens.shape == (2, 8) and tokens.dtype == torch.long
    assert (tokens[0, 3:] == 0).all() and (tokens[0, :3] != 0).all() and (tokens[1] != 0).all()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_every_grammar_caption_encodes_and_decodes_back(seed):
    captions = sample_batch(8, seed=seed, two_objects=0.5).captions
    assert VOCAB.decode(VOCAB.encode(captions)) == [" ".join(tokenize(c)) for c in captions]


def test_an_unknown_word_is_named_with_the_nearest_known_words():
    with pytest.raises(UnknownWordError, match=r"unknown word 'smal'.*did you mean 'small'"):
        VOCAB.encode(["a smal red circle"])
    with pytest.raises(ValueError, match="'hexagon'"):  # UnknownWordError is a ValueError
        VOCAB.encode(["a red hexagon"])


@pytest.mark.parametrize("caption", ["", "   ", "?!"])
def test_an_empty_caption_is_refused_clearly(caption):
    with pytest.raises(EmptyCaptionError, match="has no words"):
        VOCAB.encode(["a red circle", caption])


def test_encode_wants_a_list_of_captions():
    with pytest.raises(TypeError, match="list of captions"):
        VOCAB.encode("a red circle")


def test_a_vocabulary_reserves_index_zero_for_padding():
    vocab = Vocabulary(["b", "a", "a"])
    assert vocab.words == ["<pad>", "a", "b"] and len(vocab) == 3


@settings(max_examples=8, deadline=None)
@given(extra=st.lists(st.sampled_from(VOCAB.words[1:]), min_size=1, max_size=12))
def test_padding_does_not_change_the_embedding(extra):
    torch.manual_seed(0)
    encoder = TextEncoder().eval()
    caption = "a small red circle in the top left"
    with torch.no_grad():
        alone = encoder.encode_captions([caption])
        batched = encoder.encode_captions([caption, caption + " " + " ".join(extra)])[:1]
    assert alone.shape == (1, encoder.dim)
    assert torch.allclose(alone, batched, atol=1e-5)
