"""The text-conditional GAN and the attribute probe: the shipped generator's interface, the matching-aware loss worked
by hand, training that resumes where it stopped, and a probe that reads real scenes and catches swapped colours."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from condgan_lib import artifacts, hub, probe, text2img
from condgan_lib.configs import get_config
from condgan_lib.shapes import sample_batch
from condgan_lib.text import UnknownWordError

pytestmark = pytest.mark.usefixtures("one_thread")

SHIPPED = hub.list_pretrained()
needs = lambda name: pytest.mark.skipif(name not in SHIPPED, reason=f"{name} is not shipped")  # noqa: E731


@needs("shapes-text2img")
def test_shipped_generator_turns_captions_into_images_reproducibly():
    G = hub.load_pretrained("shapes-text2img")
    captions = ["a small red circle in the top left", "a big green square to the right of a blue triangle"]
    images = G.generate(captions, seed=0)
    assert images.shape == (2, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, G.generate(captions, seed=0))
    assert not torch.equal(images, G.generate(captions, seed=1))
    with pytest.raises(UnknownWordError, match="'hexagon'"):
        G.generate(["a red hexagon"])


def test_matching_aware_loss_by_hand():
    scores = {"real_right": torch.tensor([2.0, 0.5]), "real_wrong": torch.tensor([-2.0, 0.0]),
              "fake": torch.tensor([1.0, -1.5])}

    class D:  # a stub that returns fixed scores for each kind of pair
        features = staticmethod(lambda x: x)
        score = staticmethod(lambda x, t: scores["fake"] if x is fake else
                             scores["real_right"] if t is right else scores["real_wrong"])
        __call__ = lambda self, x, t: self.score(x, t)  # noqa: E731

    real, fake, right, wrong = torch.zeros(2, 1), torch.ones(2, 1), torch.zeros(2, 1), torch.ones(2, 1)
    loss = text2img.matching_aware_d_loss(D(), real, fake, right, wrong)
    # real+right: relu(1-2)=0, relu(1-0.5)=0.5 -> 0.25; real+wrong: relu(1-2)=0, relu(1+0)=1 -> 0.5; fake: 2, 0 -> 1
    assert loss.item() == pytest.approx(0.25 + 0.5 * 0.5 + 0.5 * 1.0)


def test_interpolation_ends_at_the_captions_and_passes_halfway():
    t = torch.randn(4, 8)
    assert torch.equal(text2img.interpolate_embeddings(t, beta=1.0), t)
    assert torch.allclose(text2img.interpolate_embeddings(t, 0.5), (t + t.roll(1, 0)) / 2)


@pytest.mark.parametrize("disc", ["projection", "concat"])
def test_discriminators_score_each_image_caption_pair(disc):
    D = text2img.DISCRIMINATORS[disc](ch=8, text_dim=16)
    assert D(torch.randn(5, 3, 32, 32), torch.randn(5, 16)).shape == (5,)


def test_training_resumes_from_its_last_checkpoint(tmp_path):
    cfg = get_config("shapes-text2img", steps=4, batch_size=8, ch=4, z_dim=4, text_pretrain_steps=2,
                     ckpt_every=2, log_every=2, eval_samples=8)
    full = text2img.train_text_gan(cfg, out=tmp_path / "full", progress=False)
    text2img.train_text_gan(dataclasses.replace(cfg, steps=2), out=tmp_path / "cut", progress=False)
    resumed = text2img.train_text_gan(cfg, out=tmp_path / "cut", resume=True, progress=False)
    assert [h["step"] for h in resumed.history] == [2, 4]
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)
    with pytest.raises(ValueError, match="another recipe"):
        text2img.train_text_gan(dataclasses.replace(cfg, ch=8), out=tmp_path / "cut", resume=True, progress=False)


@needs("shapes-probe")
def test_the_probe_reads_real_scenes_and_catches_swapped_colours():
    judge = probe.load_probe()
    real = sample_batch(200, seed=11, split="test")
    acc = probe.attribute_accuracy(judge, real.images, real.attributes)
    assert min(acc.values()) > 0.97, acc
    pairs = sample_batch(100, seed=11, split="test", two_objects=1.0)
    assert probe.binding_metrics(judge, pairs.images, pairs)["objects"] > 0.95
    first, second = pairs.attributes.clone(), pairs.second_attributes.clone()
    first[:, 1], second[:, 1] = pairs.second_attributes[:, 1], pairs.attributes[:, 1]   # captions with colours swapped
    swapped = dataclasses.replace(pairs, attributes=first, second_attributes=second)
    measured = probe.binding_metrics(judge, pairs.images, swapped)
    assert measured["swapped"] > 0.95 and measured["objects"] < 0.05 and measured["binding"] < 0.05


def test_word_tags_give_each_adjective_to_the_object_it_describes():
    first = torch.tensor([2, 0, 1, 0])    # big red triangle
    second = torch.tensor([1, 2, 0, 1])   # small blue square
    caption = "above a small azure box there is a huge crimson wedge"
    named = [text2img.TAGS[t] if t < len(text2img.TAGS) else None
             for t in text2img.word_tags(caption, first, second, relation=2)]
    assert named == ["relation above", None, "second size small", "second colour blue", "second shape square", None,
                     None, None, "first size big", "first colour red", "first shape triangle"]


@needs("shapes-text2img")
def test_the_shipped_text_encoder_reads_held_out_combinations():
    encoder = hub.load_pretrained("shapes-text2img").text_encoder
    accuracy = text2img.caption_accuracy(encoder, n=300)
    assert accuracy["caption_accuracy_test"] >= 0.99 and accuracy["caption_accuracy_heldout"] >= 0.99


def test_every_stored_text2img_run_was_read_by_the_shipped_probe_and_measures_another_generator():
    """A retrained probe leaves the table of other seeds and recipes stale: this names the rows to measure again."""
    manifest = hub.read_manifest()
    runs = json.loads(artifacts.path("text2img/runs.json").read_text())
    stale = [label for label, row in runs.items() if row["probe_sha256"] != manifest["shapes-probe"]["sha256"]]
    assert not stale, f"read by another probe; run scripts/text2img_runs.py again on: {stale}"
    assert all(row["sha256"] != manifest["shapes-text2img"]["sha256"] and row["changes"] for row in runs.values())


def test_text2img_runs_refuses_a_run_from_a_modified_tree(tmp_path):
    entry = {"commit": "0123456789ab-dirty", "command": "python -m condgan_lib.train --config shapes-text2img",
             "config": {}, "steps": 1}
    (tmp_path / "shapes-text2img.manifest_entry.json").write_text(json.dumps(entry))
    script = Path(__file__).resolve().parents[1] / "scripts" / "text2img_runs.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path), "--as", "x"], capture_output=True, text=True)
    assert done.returncode == 1 and "not a clean commit" in done.stderr
    assert "Traceback" not in done.stderr
