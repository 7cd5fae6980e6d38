"""The shipped DCGANs: better than the ones they replaced, and the showcase target (chapter "From a broken snippet to
DCGAN"): by the book's MNIST judge, at least 85 % of 2,000 samples classified with probability >= 0.9 and no class
more than twice as frequent as another."""
import json

import pytest
import torch

from condgan_lib import artifacts, hub, metrics
from condgan_lib.configs import CONFIGS


@pytest.fixture(scope="module")
def judged():
    torch.set_num_threads(2)
    out = {}
    for name in ("mnist-dcgan", "fashion-dcgan"):
        dataset = hub.read_manifest()[name]["config"]["dataset"]
        fake, _ = metrics.sample_generator(hub.load_pretrained(name), 2000, seed=0)
        out[name] = metrics.judged_classes(hub.load_pretrained(metrics.CLASSIFIER_FOR[dataset]), fake)
    return out


def test_the_judged_measures_of_real_images_and_of_a_collapsed_generator():
    judge = hub.load_pretrained("mnist-classifier")
    real, labels, *_ = metrics.reference_sets("mnist", 1000)
    on_real = metrics.judged_classes(judge, real)
    assert on_real["confident_share"] > 0.97 and on_real["class_ratio"] < 1.1
    ones = real[labels == 1][:1].expand(100, -1, -1, -1)
    collapsed = metrics.judged_classes(judge, ones)
    assert collapsed["class_counts"][1] == 100 and collapsed["class_ratio"] is None


def test_the_shipped_dcgans_beat_the_ones_they_replaced(judged):
    previous = json.loads(artifacts.path("dcgan/previous.json").read_text())
    manifest = hub.read_manifest()
    for name, before in previous.items():
        recorded = type(CONFIGS[name]).field_defaults() | manifest[name]["config"]  # later fields at their defaults
        assert recorded == CONFIGS[name].to_dict() | {"steps": manifest[name]["steps"]}, name
        assert manifest[name]["metrics"]["fid"] < before["metrics"]["fid"], name
        assert judged[name]["confident_share"] > before["judged"]["confident_share"], name
    assert judged["mnist-dcgan"]["class_ratio"] <= 2.0


@pytest.mark.xfail(strict=True, reason="the target (85 % of samples judged with p >= 0.9) is missed: the shipped "
                                       "mnist-dcgan (spectral norm and a third convolution in D) reaches 82 % at "
                                       "20,000 steps; a learning-rate decay (81 %, 80 %) or twice the width (82 %) "
                                       "lower FID but not this share (artifacts/dcgan/ablation.json)")
def test_the_mnist_dcgan_meets_the_showcase_target(judged):
    assert judged["mnist-dcgan"]["confident_share"] >= 0.85
