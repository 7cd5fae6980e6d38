"""scripts/gpu_check.sh, the one command a lent GPU runs, tested before any GPU exists: its CPU smoke mode runs every
stage and writes every file, and the training chapter's report reads both a stored run and the absence of one."""
import json
import os
import subprocess
import sys
from pathlib import Path

from condgan_lib import bench

ROOT = Path(__file__).resolve().parents[1]
FILES = ["bench_cuda.txt", "env.txt", *(f"mnist-projection-gpu/{n}" for n in
                                        ("history.json", "manifest_entry.json", "samples.png", "curves.png", "train.log"))]


def test_the_smoke_mode_writes_every_file_the_chapter_reads(tmp_path):
    env = {**os.environ, "SMOKE": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert [f for f in FILES if not (tmp_path / f).is_file()] == []
    entry = json.loads((tmp_path / "mnist-projection-gpu" / "manifest_entry.json").read_text())
    assert entry["steps"] == 20 and "--config mnist-projection-gpu" in entry["command"]
    assert "library gan_step" in (tmp_path / "bench_cuda.txt").read_text()
    report, pictures = bench.gpu_report(tmp_path)
    assert report.startswith("CPU smoke test") and "full run:" in report and len(pictures) == 2


def test_the_report_says_plainly_when_no_gpu_run_is_stored(tmp_path):
    report, pictures = bench.gpu_report(tmp_path)
    assert report.startswith("Not run on a GPU yet") and pictures == []


def test_a_stopped_run_gets_its_pictures_from_the_newest_checkpoint(tmp_path):
    from condgan_lib.runs import run_config
    run_config("mnist-projection", device="cpu", out=tmp_path, progress=False, evaluate=False, steps=6, ch=4,
               z_dim=8, batch_size=16, log_every=2, ckpt_every=2, eval_every=10 ** 6)
    for name in ("history.json", "samples.png", "curves.png"):
        (tmp_path / name).unlink()
    line = bench.pictures_from_checkpoint(tmp_path)
    assert line.startswith("newest checkpoint: step 6")
    assert all((tmp_path / n).exists() for n in ("history.json", "samples.png", "curves.png"))
