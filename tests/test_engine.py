"""The training engine, for every family that trains on it: kill -9 then --resume equals an uninterrupted run, a NaN
stops the run with nothing non-finite saved and advice that works, runs never lose or mislabel each other's work."""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch

from condgan_lib import engine, hub
from condgan_lib.fileio import atomic_save
from condgan_lib.runs import run_config

pytestmark = pytest.mark.usefixtures("one_thread")

# every family on the engine, each at a size that trains in well under a second per few steps
TINY = {
    "mnist-projection": dict(ch=4, z_dim=8, batch_size=16, eval_every=10 ** 6),
    "shapes-text2img": dict(ch=4, z_dim=4, batch_size=8, text_pretrain_steps=2, eval_every=10 ** 6),
    "shapes-clip": dict(train_size=256, batch_size=32, ch=4, embed_dim=16, text_dim=16),
    "shapes-prior": dict(train_size=128, batch_size=32, hidden=32, depth=2),
    "shapes-decoder": dict(train_size=64, batch_size=8, ch=4, z_dim=8),
    "shapes-diffusion-decoder": dict(train_size=64, batch_size=8, ch=4, timesteps=10),
    "mnist-diffusion": dict(ch=4, batch_size=8, timesteps=10, eval_every=10 ** 6),
}
EVERY = dict(log_every=4, ckpt_every=4)
RATES = {"mnist-projection": ("lr_g", "lr_d"), "shapes-text2img": ("lr_g", "lr_d"), "shapes-clip": ("lr",),
         "shapes-prior": ("lr",), "shapes-decoder": ("lr_g", "lr_d"), "shapes-diffusion-decoder": ("lr",),
         "mnist-diffusion": ("lr",)}


def needs_clip(name):
    if name.startswith("shapes-") and name not in ("shapes-clip", "shapes-text2img") and \
            "shapes-clip" not in hub.list_pretrained():
        pytest.skip("needs the shipped shapes-clip")


def train(name, out, steps, **kw):
    return run_config(name, device="cpu", out=out, progress=False, evaluate=False, steps=steps,
                      **TINY[name], **EVERY, **kw)


def cli(name, out, steps, *extra):
    sets = [a for k, v in {**TINY[name], **EVERY}.items() for a in ("--set", f"{k}={v}")]
    return [sys.executable, "-m", "condgan_lib.train", "--config", name, "--steps", str(steps), "--out", str(out),
            "--device", "cpu", "--threads", "1", "--no-eval", "--no-progress", *sets, *extra]


def finite(state: dict) -> bool:
    tensors = [t for group in ("modules", "ema") for t in _tensors(state[group])]
    return bool(tensors) and all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())


def _tensors(tree):
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from _tensors(value)


@pytest.mark.parametrize("name", sorted(TINY))
def test_kill_9_then_resume_equals_an_uninterrupted_run(name, tmp_path):
    needs_clip(name)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cli(name, killed, 100_000), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while time.time() < deadline and not any(engine.checkpoint_step(p) >= 8 for p in engine.checkpoints_in(killed)):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = engine.checkpoints_in(killed)
    assert saved, "no checkpoint was written before the kill"
    for path in saved:  # every visible checkpoint is complete: writes are atomic
        torch.load(path, weights_only=True)
    last = engine.checkpoint_step(saved[0])
    assert last >= 8 and last % 4 == 0
    resumed = train(name, killed, last + 8, resume=True)
    straight = train(name, tmp_path / "straight", last + 8)
    assert resumed.history == straight.history
    assert resumed.history[-1]["step"] == last + 8
    for (key, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), key
    assert resumed.entry["steps"] == last + 8
    first, second = resumed.entry["segments"]            # the two invocations that made the run, in order
    assert (first["from_step"], first["to_step"], second["from_step"], second["to_step"]) == (0, last, last, last + 8)
    assert "--steps 100000" in first["command"] and "segments" not in straight.entry


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_nan_stops_the_run_saves_nothing_non_finite_and_its_advice_works(name, tmp_path):
    needs_clip(name)
    with pytest.raises(engine.NonFiniteLossError) as stop:
        train(name, tmp_path, 12, nan_at_step=5)        # step 6 is poisoned; checked at the log step 8
    message = str(stop.value)
    assert "non-finite loss by step 8" in message and "nothing non-finite was saved" in message
    saved = engine.checkpoints_in(tmp_path)
    assert [p.name for p in saved] == ["step_0000004.pt"]
    assert finite(torch.load(saved[0], weights_only=True))
    assert "step_0000004.pt" in message
    advice = message.split("--resume ", 1)[1]
    overrides = dict(pair.split("=") for pair in re.findall(r"--set (\S+)", advice))
    assert set(overrides) == set(RATES[name])
    resumed = train(name, tmp_path, 12, resume=True, **{k: float(v) for k, v in overrides.items()})
    assert resumed.history[-1]["step"] == 12


def test_a_nan_before_any_checkpoint_says_that_none_was_saved(tmp_path):
    with pytest.raises(engine.NonFiniteLossError, match="No checkpoint had been saved yet"):
        train("mnist-projection", tmp_path, 12, nan_at_step=1)
    assert engine.checkpoints_in(tmp_path) == []


def test_a_fresh_run_in_a_used_folder_keeps_its_own_checkpoints(tmp_path, capsys):
    train("mnist-projection", tmp_path, 24)                                   # an earlier, longer run: 16, 20, 24
    fresh = train("mnist-projection", tmp_path, 8, seed=1)
    assert [p.name for p in engine.checkpoints_in(tmp_path)] == ["step_0000008.pt", "step_0000004.pt"]
    assert "holds an earlier run (newest: step 24)" in capsys.readouterr().err
    moved = sorted(p.name for p in (tmp_path / "checkpoints.previous-1").iterdir())
    assert moved == ["step_0000016.pt", "step_0000020.pt", "step_0000024.pt"]
    resumed = train("mnist-projection", tmp_path, 12, seed=1, resume=True)    # continues the new run, not the old
    assert resumed.history[:2] == fresh.history[:2] and resumed.history[-1]["step"] == 12


def test_resume_refuses_another_recipe_and_names_the_field(tmp_path):
    train("mnist-projection", tmp_path, 8)
    with pytest.raises(engine.ResumeError, match=r"another recipe \(ch: 4 there, 8 here\)"):
        run_config("mnist-projection", device="cpu", out=tmp_path, progress=False, evaluate=False, steps=12,
                   resume=True, **{**TINY["mnist-projection"], **EVERY, "ch": 8})


def test_a_checkpoint_from_before_a_config_field_existed_resumes_when_the_field_is_at_its_default(tmp_path):
    train("mnist-projection", tmp_path, 8)
    path = engine.checkpoints_in(tmp_path)[0]
    state = torch.load(path, weights_only=True)
    del state["config"]["lr_decay_start"]                     # as written before the field was added
    atomic_save(state, path)
    assert train("mnist-projection", tmp_path, 12, resume=True).history[-1]["step"] == 12
    with pytest.raises(engine.ResumeError, match=r"lr_decay_start: 0 there, 10 here"):
        run_config("mnist-projection", device="cpu", out=tmp_path, progress=False, evaluate=False, steps=16,
                   resume=True, **{**TINY["mnist-projection"], **EVERY, "lr_decay_start": 10})


def test_all_corrupt_checkpoints_are_moved_aside_and_the_new_run_kept(tmp_path, capsys):
    (tmp_path / "checkpoints").mkdir()
    for step in (500, 550, 600):
        (tmp_path / "checkpoints" / f"step_{step:07d}.pt").write_bytes(b"not a checkpoint")
    result = train("mnist-projection", tmp_path, 8, resume=True)
    err = capsys.readouterr().err
    assert "all 3 checkpoints" in err and "unreadable" in err and "starting from step 0" in err
    assert [p.name for p in engine.checkpoints_in(tmp_path)] == ["step_0000008.pt", "step_0000004.pt"]
    assert result.history[-1]["step"] == 8


def test_resume_with_fewer_steps_than_the_checkpoint_is_refused(tmp_path):
    train("mnist-projection", tmp_path, 12)
    with pytest.raises(engine.ResumeError, match="at step 12, beyond --steps 8"):
        train("mnist-projection", tmp_path, 8, resume=True)
    done = subprocess.run(cli("mnist-projection", tmp_path, 8, "--resume"), capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert json.loads((tmp_path / "mnist-projection.manifest_entry.json").read_text())["steps"] == 12


def test_evaluation_between_log_steps_is_recorded_at_its_step(tmp_path):
    if "mnist-classifier" not in hub.list_pretrained():
        pytest.skip("needs the shipped mnist-classifier")
    result = run_config("mnist-projection", device="cpu", out=tmp_path, progress=False, evaluate=False, steps=12,
                        **{**TINY["mnist-projection"], "eval_every": 6, "eval_samples": 20}, **EVERY)
    assert [h["step"] for h in result.history] == [4, 6, 8, 12]
    assert [h["step"] for h in result.history if "condition_accuracy" in h] == [6, 12]
    assert all("d_loss" in h for h in result.history if h["step"] != 6)


def test_files_keep_ordinary_permissions_and_no_lock_is_left(tmp_path):
    before = os.umask(0o022)
    try:
        atomic_save({"x": torch.zeros(1)}, tmp_path / "a.pt")
        hub.write_manifest_entry("x", {"file": "a.pt"}, tmp_path)
    finally:
        os.umask(before)
    assert (tmp_path / "a.pt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / hub.MANIFEST).stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", hub.MANIFEST]


def test_the_classifier_and_the_probe_refuse_resume(tmp_path):
    for name in ("mnist-classifier", "shapes-probe"):
        with pytest.raises(ValueError, match="without checkpoints"):
            run_config(name, device="cpu", out=tmp_path, progress=False, evaluate=False, resume=True)


def test_the_recorded_command_runs_as_written(tmp_path):
    done = subprocess.run(cli("mnist-projection", tmp_path / "run", 4), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    entry = json.loads((tmp_path / "run" / "mnist-projection.manifest_entry.json").read_text())
    argv = shlex.split(entry["command"])
    assert argv[:3] == ["python", "-m", "condgan_lib.train"] and argv[argv.index("--steps") + 1] == "4"
    assert entry["family"] == "gan" and entry["steps"] == 4
