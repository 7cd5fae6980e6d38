"""Tokenizer, vocabulary and text encoder: every grammar caption encodes and decodes back, unknown words and empty
captions get errors that say what is wrong, and padding never changes a caption's embedding."""
import hashlib

import pytest
import torch
from hypothesis import given, settings, strategies as st

from condgan_lib.shapes import sample_batch
from condgan_lib.text import (MAX_CAPTION_WORDS, VOCAB, CaptionTooLongError, EmptyCaptionError, TextEncoder,
                               UnknownWordError, UnsupportedCharacterError, Vocabulary, tokenize)

# SHA-256 of the vocabulary's words joined by spaces, in id order, as the shipped models were trained with.
VOCAB_SHA256 = "e229792e4e6212a6b52a40238835afb039d6bfb92a88a71387d8175a9824a355"


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


# ------------------------------------------------------------------ characters outside the alphabet, long captions

@pytest.mark.parametrize("caption, named", [
    ("一个红色的圆", "'一' (U+4E00, character 1, in '一个红色的圆')"),      # used to say "has no words"
    ("a red 圆 circle", "'圆' (U+5706, character 7, in '圆')"),            # used to draw "a red circle"
    ("a rëd circle", "'ë' (U+00EB, character 4, in 'rëd')"),               # used to name "r"
    ("a red\u0301 circle", "(U+0301, character 6, in 'red\u0301')"),        # a combining accent is named too
])
def test_characters_outside_the_alphabet_are_named_with_their_word(caption, named):
    with pytest.raises(UnsupportedCharacterError) as info:
        VOCAB.encode(["a red circle", caption])
    message = str(info.value)
    assert named in message and "English words from the book's grammar" in message
    assert isinstance(info.value, UnknownWordError)  # callers that catch unknown words catch this too


def test_non_ascii_white_space_separates_words():
    assert tokenize("a\u00a0red\u2003circle") == ["a", "red", "circle"]


@settings(max_examples=60, deadline=None)
@given(caption=st.text(st.characters(codec="ascii"), max_size=30),
       letter=st.characters(categories=["L"], exclude_characters=[chr(i) for i in range(128)]),
       at=st.integers(0, 30))
def test_any_caption_with_a_non_ascii_letter_is_refused_naming_it(caption, letter, at):
    at = min(at, len(caption))
    caption = caption[:at] + letter + caption[at:]
    with pytest.raises(UnsupportedCharacterError) as info:
        tokenize(caption)
    assert repr(letter) in str(info.value) and f"character {at + 1}," in str(info.value)


@settings(max_examples=30, deadline=None)
@given(caption=st.text(st.characters(codec="ascii"), max_size=200))
def test_plain_ascii_captions_never_raise_the_character_error(caption):
    try:
        tokenize(caption)
    except CaptionTooLongError:
        pass


def test_the_length_limit_is_stated_and_leaves_room_above_the_grammar():
    longest = max(len(tokenize(c)) for seed in range(20)
                  for c in sample_batch(64, seed=seed, two_objects=0.5).captions)
    assert longest <= 14 and MAX_CAPTION_WORDS >= 4 * longest
    VOCAB.encode([" ".join(["red"] * MAX_CAPTION_WORDS)])  # at the limit: accepted
    with pytest.raises(CaptionTooLongError, match=rf"100000 words; the limit is {MAX_CAPTION_WORDS}"):
        VOCAB.encode(["a red circle " + " ".join(["a"] * 99997)])


def test_the_vocabulary_ids_are_unchanged():
    """The shipped text models depend on these ids."""
    assert hashlib.sha256(" ".join(VOCAB.words).encode()).hexdigest() == VOCAB_SHA256
    assert VOCAB.encode(["A small red circle in the top left."]).tolist() == [[1, 38, 34, 13, 23, 40, 44, 26]]
