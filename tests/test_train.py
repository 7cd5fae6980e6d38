"""The training command: configs, determinism, kill -9 and --resume, corrupted checkpoints, the NaN guard."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from condgan_lib import train
from condgan_lib.configs import get_config

TINY = ["--set", "ch=4", "--set", "z_dim=8", "--batch-size", "16", "--set", "log_every=10",
        "--set", "eval_every=100000", "--no-progress", "--device", "cpu"]


def tiny(name="mnist-dcgan", **kw):
    base = dict(ch=4, z_dim=8, batch_size=16, log_every=10, eval_every=100000, ckpt_every=20, steps=60)
    base.update(kw)
    return get_config(name, **base)


def run_cli(args, **kw):
    return subprocess.run([sys.executable, "-m", "condgan_lib.train", *args], capture_output=True, text=True, **kw)


def test_bad_config_values_get_clear_errors():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        get_config("mnist-projection", steps=0)
    with pytest.raises(ValueError, match="loss must be"):
        get_config("mnist-projection", loss="wasserstein")
    with pytest.raises(KeyError, match="known configs: .*mnist-projection"):
        get_config("mnist-projektion")
    with pytest.raises(ValueError, match="no field"):
        get_config("mnist-projection", learning_rate=1.0)
    result = run_cli(["--config", "mnist-projection", "--set", "ch=wide"])
    assert result.returncode == 2 and "'wide' is not a valid int" in result.stderr


def test_training_is_reproducible_for_a_seed(tmp_path):
    a = train.train_gan(tiny(steps=20, seed=3), device="cpu", out=tmp_path / "a", progress=False)
    b = train.train_gan(tiny(steps=20, seed=3), device="cpu", out=tmp_path / "b", progress=False)
    assert a["history"] == b["history"]
    for (k, va), vb in zip(a["model"].state_dict().items(), b["model"].state_dict().values()):
        assert torch.equal(va, vb), k


def test_kill_9_then_resume_continues_from_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    args = ["--config", "mnist-concat", "--steps", "3000", "--set", "ckpt_every=25", "--out", str(out), *TINY]
    proc = subprocess.Popen([sys.executable, "-m", "condgan_lib.train", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.name >= "step_0000075.pt" for p in (out / "checkpoints").glob("*.pt")):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = train.checkpoints_in(out)
    assert saved, "no checkpoint was written before the kill"
    last = int(train.CKPT_PATTERN.search(saved[0].name).group(1))
    assert last >= 75 and last % 25 == 0
    for p in (out / "checkpoints").glob("*.pt"):
        torch.load(p, weights_only=True)  # every visible checkpoint is complete: writes are atomic
    result = run_cli([*args[:3], str(last + 50), *args[4:], "--resume"], timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"resumed mnist-concat from step {last}" in result.stdout + result.stderr
    assert train.checkpoints_in(out)[0].name == f"step_{last + 50:07d}.pt"


def test_resumed_run_equals_an_uninterrupted_run(tmp_path):
    full = train.train_gan(tiny(steps=60), device="cpu", out=tmp_path / "full", progress=False)
    train.train_gan(tiny(steps=60), device="cpu", out=tmp_path / "part", progress=False)
    for p in train.checkpoints_in(tmp_path / "part")[:2]:  # keep only step 20: as if killed at step 39
        p.unlink()
    resumed = train.train_gan(tiny(steps=60), device="cpu", out=tmp_path / "part", resume=True, progress=False)
    assert resumed["history"] == full["history"]
    for (k, va), vb in zip(full["model"].state_dict().items(), resumed["model"].state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-6), k


def test_corrupted_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    train.train_gan(tiny(steps=60), device="cpu", out=tmp_path, progress=False)
    latest = train.checkpoints_in(tmp_path)[0]
    assert latest.name == "step_0000060.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    state = train.load_latest_checkpoint(tmp_path)
    assert state["step"] == 40
    assert "step_0000060.pt is unreadable" in capsys.readouterr().err
    resumed = train.train_gan(tiny(steps=60), device="cpu", out=tmp_path, resume=True, progress=False)
    assert resumed["history"][-1]["step"] == 60


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(train.NonFiniteLossError, match="non-finite loss at step 30.*intact"):
        train.train_gan(tiny(steps=60), device="cpu", out=tmp_path, progress=False, nan_at_step=29)
    saved = train.checkpoints_in(tmp_path)
    assert [p.name for p in saved] == ["step_0000020.pt"]
    state = torch.load(saved[0], weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["G"].values() if v.is_floating_point())


def test_resume_with_a_different_config_is_refused(tmp_path):
    train.train_gan(tiny(steps=20), device="cpu", out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different config"):
        train.train_gan(tiny(steps=20, lr_g=1e-3), device="cpu", out=tmp_path, resume=True, progress=False)


def test_diffaugment_keeps_shape_and_range():
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    y = train.diff_augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert not torch.equal(x, y)
