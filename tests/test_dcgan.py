"""The shipped DCGANs: better than the ones they replaced, and the showcase target (chapter "From a broken snippet to
DCGAN"): by the book's MNIST judge, at least 85 % of 2,000 samples classified with probability >= 0.9 and no class
more than twice as frequent as another."""
import json
from pathlib import Path

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
    replaced = [name for name, before in previous.items() if before["sha256"] != manifest[name]["sha256"]]
    assert "mnist-dcgan" in replaced
    for name in previous:
        recorded = type(CONFIGS[name]).field_defaults() | manifest[name]["config"]  # later fields at their defaults
        assert recorded == CONFIGS[name].to_dict() | {"steps": manifest[name]["steps"]}, name
    for name in replaced:   # a file that was kept is measured against nothing
        assert manifest[name]["metrics"]["fid"] < previous[name]["metrics"]["fid"], name
        assert judged[name]["confident_share"] > previous[name]["judged"]["confident_share"], name
    assert judged["mnist-dcgan"]["class_ratio"] <= 2.0


def test_the_mnist_dcgan_meets_the_showcase_target(judged):
    """Met with InfoGAN's code (0.877 in the ablation at 20,000 steps); without it the recipe stops near 0.82."""
    assert judged["mnist-dcgan"]["confident_share"] >= 0.85
    assert judged["mnist-dcgan"]["class_ratio"] <= 2.0


def test_the_ablation_records_a_training_run_only_under_the_recipe_that_trained_it(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    import dcgan_ablation
    from condgan_lib import gan
    from condgan_lib.configs import get_config

    cfg = get_config("mnist-dcgan", steps=40)
    G, _, kwargs = gan.build_models(cfg)
    hub.atomic_save(hub.model_payload(G, kwargs, "mnist-dcgan", "gan"), tmp_path / "mnist-dcgan.pt")
    entry = {"file": "mnist-dcgan.pt", "config": json.loads(json.dumps(cfg.to_dict())), "steps": 40,
             "wall_time_s": 1.0, "hardware": "cpu", "command": "python -m condgan_lib.train --config mnist-dcgan",
             "sha256": hub.sha256_of(tmp_path / "mnist-dcgan.pt")}
    (tmp_path / "mnist-dcgan.manifest_entry.json").write_text(json.dumps(entry))
    monkeypatch.setattr(dcgan_ablation, "measure", lambda generator, judge: {"confident_share": generator.z_dim / 128})
    record = tmp_path / "ablation.json"
    with pytest.raises(SystemExit, match="not trained with sngan-batch128's recipe .*batch_size"):
        dcgan_ablation.record_run(tmp_path, "sngan-batch128", None, record)
    assert not record.exists()
    with pytest.raises(SystemExit, match="differs in: info_weight, latent_codes"):  # the shipped recipe has the code
        dcgan_ablation.record_run(tmp_path, "sngan-discriminator", None, record)
    dcgan_ablation.record_run(tmp_path, "sngan-infogan-code", None, record)
    row = json.loads(record.read_text())["sngan-infogan-code"]
    assert row["command"] == "python scripts/dcgan_ablation.py --from-run runs/mnist-dcgan --as sngan-infogan-code"
    [stage] = row["stages"]
    assert stage["steps"] == 40 and stage["confident_share"] == 0.5
    assert stage["trained_by"] == ["python -m condgan_lib.train --config mnist-dcgan"]
    # a row measured by another judge keeps none of that judge's stages
    record.write_text(json.dumps({"sngan-infogan-code": row | {"judge_sha256": "0" * 64, "stages": [{"steps": 20}]}}))
    dcgan_ablation.record_run(tmp_path, "sngan-infogan-code", None, record)
    row = json.loads(record.read_text())["sngan-infogan-code"]
    assert row["judge_sha256"] == metrics.judge_sha256("mnist") and [s["steps"] for s in row["stages"]] == [40]
