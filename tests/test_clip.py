"""CLIP in miniature: the contrastive loss, retrieval recall, zero-shot prompts, the encoders and the trainer."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from condgan_lib import clip, shapes, text
from condgan_lib.runs import run_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_clip_loss_is_the_mean_of_both_cross_entropies_written_out():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.5, 2.0, 0.1], [1.0, 1.0, 1.0]])
    rows = -torch.stack([logits[i].log_softmax(0)[i] for i in range(3)]).mean()
    cols = -torch.stack([logits[:, j].log_softmax(0)[j] for j in range(3)]).mean()
    assert clip.clip_loss(logits).item() == pytest.approx(((rows + cols) / 2).item(), abs=1e-6)


def test_clip_loss_is_log_n_for_uniform_logits_and_near_zero_for_sharp_matches():
    n = 8
    assert clip.clip_loss(torch.zeros(n, n)).item() == pytest.approx(math.log(n), abs=1e-6)
    assert clip.clip_loss(100 * torch.eye(n)).item() < 1e-6


def test_retrieval_recall_counts_a_hit_when_any_correct_item_is_in_the_top_k():
    gallery = F.normalize(torch.eye(4), dim=1)
    query = gallery[[1, 0, 2, 3]]                                  # queries 0, 1 retrieve the wrong item first
    identity = torch.eye(4, dtype=torch.bool)
    assert clip.retrieval_recall(query, gallery, identity, ks=(1, 4)) == {1: 0.5, 4: 1.0}
    swapped_ok = identity.clone()
    swapped_ok[0, 1] = swapped_ok[1, 0] = True                    # items 0 and 1 share a caption's meaning
    assert clip.retrieval_recall(query, gallery, swapped_ok, ks=(1,)) == {1: 1.0}


def test_same_attributes_matches_exactly_equal_rows():
    a = torch.tensor([[0, 1, 0, 2], [1, 1, 0, 2]])
    assert clip.same_attributes(a, a).tolist() == [[True, False], [False, True]]


def test_attribute_prompts_cover_every_value_with_captions_that_name_it():
    prompts = clip.attribute_prompts("colour", per_combination=1)
    combinations = math.prod(len(v) for v in shapes.ATTRIBUTES.values())
    assert len(prompts) == len(shapes.ATTRIBUTES["colour"])
    assert sum(map(len, prompts)) == combinations
    for colour, captions in zip(shapes.ATTRIBUTES["colour"], prompts):
        words = set(shapes.COLOUR_WORDS[colour])
        assert all(words & set(text.tokenize(c)) for c in captions)


def test_encoders_return_unit_vectors_and_the_temperature_is_clipped_at_one_hundredth():
    torch.manual_seed(0)
    model = clip.CLIPModel(len(text.VOCAB), embed_dim=16, ch=4, text_dim=16).eval()
    batch = shapes.sample_batch(5, seed=0)
    img, txt = model.encode_images(batch.images), model.encode_captions(batch.captions)
    assert img.shape == txt.shape == (5, 16)
    assert torch.allclose(img.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(txt.norm(dim=1), torch.ones(5), atol=1e-5)
    assert model.temperature == pytest.approx(0.07, rel=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)                              # 1 / tau = e^10 > 100: clipped
    assert model.temperature == pytest.approx(0.01, rel=1e-5)
    logits = model(batch.images, text.VOCAB.encode(batch.captions))
    assert torch.allclose(logits, 100 * img @ txt.T, atol=1e-4)


def test_an_unknown_word_in_a_caption_is_refused_by_name():
    model = clip.CLIPModel(len(text.VOCAB), embed_dim=8, ch=4, text_dim=8)
    with pytest.raises(text.UnknownWordError, match="dodecahedron"):
        model.encode_captions(["a small red dodecahedron"])


def test_training_lowers_the_loss_and_resume_continues_from_the_checkpoint(tmp_path):
    small = dict(train_size=256, batch_size=32, ch=4, embed_dim=16, text_dim=16, log_every=5, ckpt_every=10)
    first = run_config("shapes-clip", device="cpu", out=tmp_path, progress=False, evaluate=False, steps=10, **small)
    resumed = run_config("shapes-clip", device="cpu", out=tmp_path, progress=False, evaluate=False, resume=True,
                         steps=40, **small)
    history = resumed.history
    assert [h["step"] for h in history][:2] == [5, 10] and history[-1]["step"] == 40
    assert history[1] == first.history[1]                     # the first ten steps were not run again
    assert history[-1]["loss"] < history[0]["loss"]


_TINY = clip.CLIPModel(len(text.VOCAB), embed_dim=16, ch=4, text_dim=16).eval()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(*[st.integers(0, len(v) - 1) for v in shapes.ATTRIBUTES.values()]), min_size=1, max_size=6),
       st.integers(0, 2 ** 16))
def test_a_caption_embedding_does_not_depend_on_the_rest_of_the_batch(rows, seed):
    """Captions of any length are padded to the longest in their batch; the padding must not leak into embeddings."""
    rng = np.random.default_rng(seed)
    names = list(shapes.ATTRIBUTES.values())
    captions = [shapes.caption_for(tuple(names[k][v] for k, v in enumerate(row)), rng) for row in rows]
    together = _TINY.encode_captions(captions)
    alone = torch.cat([_TINY.encode_captions([c]) for c in captions])
    assert torch.allclose(together, alone, atol=1e-5)
    assert torch.allclose(together.norm(dim=1), torch.ones(len(captions)), atol=1e-5)
