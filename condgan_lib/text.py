"""From captions to vectors: a tokenizer, a vocabulary with clear errors, and a small GRU text encoder.

Public interface (stable; other chapters build on it):

- ``tokenize(caption) -> list[str]``: lower-case words; punctuation is dropped. A character outside plain ASCII
  (a letter such as "ë" or "圆", a symbol, an emoji; white space excepted) raises ``UnsupportedCharacterError``,
  and a caption of more than ``MAX_CAPTION_WORDS`` words raises ``CaptionTooLongError``.
- ``Vocabulary(words)``: index 0 is padding; ``encode(captions) -> LongTensor [N, L]`` padded with 0,
  ``decode(tokens)`` back to words. ``VOCAB`` is the default vocabulary: every word of the grammar in
  ``condgan_lib.shapes``.
- ``UnknownWordError(ValueError)``: a word outside the vocabulary; the message names it and suggests the nearest
  known words. ``EmptyCaptionError(ValueError)``: a caption with no words. ``UnsupportedCharacterError``
  (an ``UnknownWordError``): characters outside the vocabulary's alphabet, named with their positions and words.
  ``CaptionTooLongError(ValueError)``: a caption longer than the limit.
- ``TextEncoder(nn.Module)``: tokens ``[N, L]`` -> sentence embeddings ``[N, dim]`` (word embeddings, a
  bidirectional GRU over the real words only, a linear map of its two final states), as the sentence encoders
  of text-conditional GANs (Reed et al., 2016) read a caption word by word.
"""
from __future__ import annotations

import difflib
import re

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .shapes import grammar_words

PAD = "<pad>"
# The grammar's longest caption has 14 words ("there is a small red circle to the right of a big blue square");
# a few times that leaves room for hand-written captions, and stops a caption far outside anything the text
# encoder was trained on (its embedding grows with the length).
MAX_CAPTION_WORDS = 64
_EXAMPLE = "'a small red circle in the top left'"


class UnknownWordError(ValueError):
    """A caption uses a word outside the vocabulary."""


class EmptyCaptionError(ValueError):
    """A caption has no words."""


class UnsupportedCharacterError(UnknownWordError):
    """A caption has characters outside the vocabulary's alphabet (plain ASCII), such as "ë" or "圆"."""


class CaptionTooLongError(ValueError):
    """A caption has more than ``MAX_CAPTION_WORDS`` words."""


def _check_characters(caption: str) -> None:
    """Refuse non-ASCII characters (white space excepted), naming each with its position and word."""
    bad = [m.start() for m in re.finditer(r"[^\x00-\x7f]", caption) if not m.group().isspace()]
    if not bad:
        return
    words = list(re.finditer(r"\S+", caption))
    named = []
    for i in bad[:5]:
        word = next(m.group() for m in words if m.start() <= i < m.end())
        named.append(f"{caption[i]!r} (U+{ord(caption[i]):04X}, character {i + 1}, in {word!r})")
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    raise UnsupportedCharacterError(
        f"caption {caption[:80]!r}{'...' if len(caption) > 80 else ''} has characters outside the vocabulary's "
        f"alphabet: {', '.join(named)}{more}. Captions are English words from the book's grammar, in plain "
        f"ASCII letters, e.g. {_EXAMPLE}")


def tokenize(caption: str) -> list[str]:
    """Lower-case words of a caption: ``"A small, RED circle!"`` -> ``["a", "small", "red", "circle"]``."""
    if not isinstance(caption, str):
        raise TypeError(f"a caption must be a str, not {type(caption).__name__}")
    _check_characters(caption)
    words = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", caption.lower())
    if len(words) > MAX_CAPTION_WORDS:
        raise CaptionTooLongError(
            f"caption {caption[:60]!r}... has {len(words)} words; the limit is {MAX_CAPTION_WORDS} "
            f"(MAX_CAPTION_WORDS; the grammar's captions have at most 14), e.g. {_EXAMPLE}")
    return words


class Vocabulary:
    """Words <-> indices; index 0 is padding."""

    def __init__(self, words):
        self.words: list[str] = [PAD] + sorted(set(words) - {PAD})
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def nearest(self, word: str, k: int = 3) -> list[str]:
        """Up to ``k`` known words closest in spelling to ``word``."""
        return difflib.get_close_matches(word, self.words[1:], n=k, cutoff=0.5)

    def encode_one(self, caption: str) -> list[int]:
        """Indices of one caption's words; clear errors for an empty caption or an unknown word."""
        words = tokenize(caption)
        if not words:
            raise EmptyCaptionError(f"caption {caption!r} has no words; describe a scene, e.g. "
                                    f"'a small red circle in the top left'")
        for position, word in enumerate(words):
            if word not in self.index:
                close = self.nearest(word)
                hint = f"did you mean {', '.join(repr(w) for w in close)}?" if close else \
                    f"known words: {', '.join(self.words[1:])}"
                raise UnknownWordError(f"unknown word {word!r} (word {position + 1} of caption {caption!r}); {hint}")
        return [self.index[w] for w in words]

    def encode(self, captions: list[str]) -> torch.Tensor:
        """``LongTensor [N, L]`` of word indices, padded with 0 to the longest caption."""
        if isinstance(captions, str):
            raise TypeError("encode takes a list of captions; wrap a single caption in a list")
        if len(captions) == 0:
            raise ValueError("encode needs at least one caption")
        rows = [self.encode_one(c) for c in captions]
        tokens = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
        for i, row in enumerate(rows):
            tokens[i, :len(row)] = torch.tensor(row)
        return tokens

    def decode(self, tokens: torch.Tensor) -> list[str]:
        """Captions (words joined by spaces, padding dropped) from ``[N, L]`` indices."""
        return [" ".join(self.words[int(i)] for i in row if int(i) != 0) for row in tokens]


VOCAB = Vocabulary(grammar_words())


class TextEncoder(nn.Module):
    """Word embeddings -> bidirectional GRU -> linear: tokens ``[N, L]`` (0 = padding) -> ``[N, dim]``."""

    def __init__(self, vocab_size: int = len(VOCAB), dim: int = 64, word_dim: int = 32, hidden: int = 64):
        super().__init__()
        self.dim = dim
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        lengths = (tokens != 0).sum(1)
        if (lengths == 0).any():
            raise EmptyCaptionError("a row of tokens is all padding (an empty caption)")
        packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed)                             # [2, N, hidden]: forward and backward final states
        return self.out(torch.cat([last[0], last[1]], dim=1))

    def encode_captions(self, captions: list[str], vocab: Vocabulary = VOCAB) -> torch.Tensor:
        """Sentence embeddings ``[N, dim]`` of a list of captions."""
        return self(vocab.encode(captions).to(self.out.weight.device))
