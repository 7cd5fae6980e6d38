"""The benchmark command (chapter "Training for real"): the training step, printed as ratios against a plain loop run in the same process.

    python -m condgan_lib.bench [--config mnist-projection] [--steps 100] [--budget-s 300] [--processes 2]
                                [--skip-accuracy] [--device auto] [--threads T] [--out FILE]

1. Images/s of the library's ``gan_step`` against a plain eager loop of the same model written out below
   (ratio >= 1.0 means the library's abstractions cost nothing).
2. On CUDA only: eager fp32 vs bf16 autocast + channels_last vs ``torch.compile``, each as a ratio to eager fp32.
3. With ``--processes N``: images/s of the training command in one process and in N data-parallel processes
   (``torchrun``; gloo on the CPU, NCCL on GPUs), as a ratio.
4. Wall time of training from scratch until the EMA generator reaches the target condition accuracy (default 98 %),
   or, when the time budget runs out first, the accuracy reached within it.
5. Peak memory (resident set on CPU; allocated on CUDA).

``--out FILE`` also writes the printed table to FILE, headed by the command, commit and hardware.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from . import hub, metrics
from .configs import GANConfig, get_config
from .data import DataUnavailableError, load_images
from .engine import load_latest_checkpoint
from .fileio import git_commit, hardware, resolve_device
from .gan import build_models, gan_step, train_gan, write_run_pictures


def plain_loop(G, D, opt_g, opt_d, batches, steps: int, z_dim: int, device: str) -> float:
    """The same projection-GAN hinge step written out by hand, no library code; returns images/s."""
    start = time.perf_counter()
    for real, labels in batches[:steps]:
        z = torch.randn(real.shape[0], z_dim, device=device)
        fake_labels = torch.randint(0, 10, (real.shape[0],), device=device)
        fake = G(z, fake_labels)
        d_loss = F.relu(1 - D(real, labels)).mean() + F.relu(1 + D(fake.detach(), fake_labels)).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = -D(fake, fake_labels).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    _sync(device)
    return steps * batches[0][0].shape[0] / (time.perf_counter() - start)


def library_loop(cfg, G, D, opt_g, opt_d, batches, steps: int, device: str, autocast=contextlib.nullcontext) -> float:
    """The library's ``gan_step`` over the same batches; returns images/s."""
    start = time.perf_counter()
    for real, labels in batches[:steps]:
        z = torch.randn(real.shape[0], cfg.z_dim, device=device)
        fake_labels = torch.randint(0, 10, (real.shape[0],), device=device)
        gan_step(cfg, G, D, opt_g, opt_d, real, labels, z, fake_labels, autocast)
    _sync(device)
    return steps * batches[0][0].shape[0] / (time.perf_counter() - start)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _fresh(cfg, device, channels_last=False):
    torch.manual_seed(cfg.seed)
    G, D, _ = build_models(cfg)
    G, D = G.to(device), D.to(device)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    return (G, D, torch.optim.Adam(G.parameters(), cfg.lr_g, betas=cfg.betas),
            torch.optim.Adam(D.parameters(), cfg.lr_d, betas=cfg.betas))


def step_throughput(cfg, device: str, steps: int, rounds: int = 10) -> tuple[float, float, float]:
    """Images/s of the plain loop and of the library step over the same ``steps`` batches, and their ratio.

    The two loops alternate in ``rounds`` chunks (plain then library, then library then plain, ...), each continuing
    its own models. Each is reported at its median chunk time, and the ratio is the median of the per-chunk ratios:
    a burst of other load on the machine then changes one chunk, not the result.
    """
    data = load_images(cfg.dataset, "train")
    gen = torch.Generator().manual_seed(0)
    idx = [torch.randint(0, len(data.labels), (cfg.batch_size,), generator=gen) for _ in range(steps + 5)]
    batches = [((data.images[i] * 2 - 1).to(device), data.labels[i].to(device)) for i in idx]
    plain_models, lib_models = _fresh(cfg, device), _fresh(cfg, device)
    plain_loop(*plain_models, batches, 5, cfg.z_dim, device)  # warm-up
    library_loop(cfg, *lib_models, batches, 5, device)
    chunk = max(1, steps // rounds)
    plain, lib = [], []
    for i, r in enumerate(range(0, steps - chunk + 1, chunk)):
        part = batches[r:r + chunk]
        run_plain = lambda: plain.append(plain_loop(*plain_models, part, chunk, cfg.z_dim, device))  # noqa: E731
        run_lib = lambda: lib.append(library_loop(cfg, *lib_models, part, chunk, device))  # noqa: E731
        for run in ((run_plain, run_lib) if i % 2 == 0 else (run_lib, run_plain)):
            run()
    median = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return median(plain), median(lib), median([b / a for a, b in zip(plain, lib)])


def time_to_accuracy(cfg, device: str, target: float, budget_s: float = float("inf"),
                     check_every: int = 250) -> dict:
    """Train from scratch in chunks of ``check_every`` steps; after each, measure the EMA generator's condition
    accuracy on 1000 samples. Stops at ``target``, at ``cfg.steps``, or once training has used ``budget_s`` seconds.

    Returns ``{"reached": bool, "seconds": training wall time, "steps", "accuracy": the last measured}``; the
    seconds count training only, not the accuracy checks.
    """
    classifier = hub.load_pretrained(metrics.CLASSIFIER_FOR[cfg.dataset])
    labels = torch.arange(10).repeat_interleave(100)
    out = tempfile.mkdtemp(prefix="bench-")
    result = {"reached": False, "seconds": 0.0, "steps": 0, "accuracy": float("nan")}
    for steps in range(check_every, cfg.steps + 1, check_every):
        run = dataclasses.replace(cfg, steps=steps, ckpt_every=check_every, eval_every=10 ** 9)
        with contextlib.redirect_stderr(io.StringIO()):  # "resumed ..." is not part of the table
            trained = train_gan(run, device=device, out=out, resume=steps > check_every, progress=False)
        acc = metrics.condition_accuracy(classifier, trained.model.generate(labels, seed=0), labels)
        result = {"reached": acc >= target, "seconds": trained.wall_time_s, "steps": steps, "accuracy": acc}
        print(f"  step {steps:5d}  {trained.wall_time_s:7.1f} s  condition accuracy {acc:.3f}", flush=True)
        if acc >= target or trained.wall_time_s >= budget_s:
            break
    shutil.rmtree(out, ignore_errors=True)
    return result


def data_parallel_throughput(cfg, device: str, processes: int, steps: int, threads: int) -> dict:
    """Images/s of ``python -m condgan_lib.train`` in one process and under ``torchrun`` with ``processes`` ranks.

    Both train ``cfg`` (same global batch) for ``steps`` steps on the same ``threads`` CPU threads in all: the single
    process uses them all, each of the ``processes`` ranks gets ``threads // processes`` (at least one). No evaluation,
    one checkpoint; images/s = steps x global batch / the run's recorded training wall time.
    """
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    rates = {}
    for n in (1, processes):
        per_process = str(max(1, threads // n))
        common = ["--config", cfg.name, "--steps", str(steps), "--device", device.split(":")[0], "--threads",
                  per_process, "--no-progress", "--no-eval", "--set", f"eval_every={10 ** 9}", "--set",
                  f"ckpt_every={10 ** 9}"]
        out = tempfile.mkdtemp(prefix="bench-ddp-")
        launch = ([sys.executable, "-m", "condgan_lib.train"] if n == 1 else
                  [torchrun, "--standalone", "--nproc_per_node", str(n), "-m", "condgan_lib.train"])
        env = {**os.environ, "OMP_NUM_THREADS": per_process}
        done = subprocess.run([*launch, *common, "--out", out], capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(launch)} failed:\n{done.stderr[-2000:]}")
        entry = json.loads((Path(out) / f"{cfg.name}.manifest_entry.json").read_text())
        rates[n] = steps * cfg.batch_size / entry["wall_time_s"]
        shutil.rmtree(out, ignore_errors=True)
    return rates


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Tee:
    """Write to the terminal and keep a copy (for ``--out``)."""

    def __init__(self, stream):
        self.stream, self.lines = stream, []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def pictures_from_checkpoint(out: Path) -> str:
    """``history.json``, ``samples.png`` and ``curves.png`` of a GAN run stopped before its end (e.g. by a time
    limit), from the EMA generator of its newest checkpoint; returns a line saying which step they show."""
    state = load_latest_checkpoint(out)
    if state is None:
        return f"no readable checkpoint in {out / 'checkpoints'}"
    cfg = GANConfig(**{**state["config"], "betas": tuple(state["config"]["betas"]), "steps": state["step"]})
    G, _, _ = build_models(cfg)
    G.load_state_dict({k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")})
    history = json.loads(state["history"])
    (out / "history.json").write_text(json.dumps(history, indent=1))
    write_run_pictures(out, cfg, G, history, state["wall_time_s"])
    return f"newest checkpoint: step {state['step']}, {state['wall_time_s']:.0f} s of training"


def gpu_report(folder: Path) -> tuple[str, list[Path]]:
    """What ``scripts/gpu_check.sh`` stored in ``folder`` (the training chapter shows it): the benchmark table and the
    GPU run's record as text, and its pictures; or a plain statement that no GPU run is stored."""
    bench, run = folder / "bench_cuda.txt", folder / "mnist-projection-gpu"
    if not bench.exists():
        return "Not run on a GPU yet: no GPU benchmark or GPU run is stored (scripts/gpu_check.sh makes them).", []
    env = (folder / "env.txt").read_text() if (folder / "env.txt").exists() else ""
    lines = []
    if "SMOKE=1" in env:
        lines.append("CPU smoke test of scripts/gpu_check.sh (SMOKE=1): not a GPU measurement.")
    lines.append(bench.read_text().rstrip())
    entry_path = run / "manifest_entry.json"
    if entry_path.exists():
        entry = json.loads(entry_path.read_text())
        lines.append(f"full run: {entry['command']}\n  {entry['hardware']}, {entry['wall_time_s'] / 60:.1f} min, "
                     f"commit {entry.get('commit')}, metrics {entry['metrics']}")
    elif (run / "train.log").exists():
        lines.append((run / "train.log").read_text()[-1500:])   # a run stopped by its time limit says so here
    return "\n".join(lines), [p for p in (run / "curves.png", run / "samples.png") if p.exists()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m condgan_lib.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="mnist-projection")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=100, help="steps per throughput measurement")
    parser.add_argument("--target", type=float, default=0.98, help="condition accuracy to reach")
    parser.add_argument("--budget-s", type=float, default=600.0, help="training seconds allowed to reach the target")
    parser.add_argument("--check-every", type=int, default=250, help="steps between accuracy checks")
    parser.add_argument("--skip-accuracy", action="store_true", help="skip the time-to-accuracy run")
    parser.add_argument("--processes", type=int, default=0,
                        help="also compare the training command in 1 and in N data-parallel processes")
    parser.add_argument("--ddp-steps", type=int, default=200, help="steps of each data-parallel measurement")
    parser.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: its own choice)")
    parser.add_argument("--out", help="also write the printed table to this file")
    parser.add_argument("--pictures-from", metavar="RUN", help="only draw the pictures of a stopped GAN run from its "
                                                               "newest checkpoint (used by scripts/gpu_check.sh)")
    args = parser.parse_args(argv)
    if args.pictures_from:
        print(pictures_from_checkpoint(Path(args.pictures_from)))
        return 0
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be at least 1, not {args.threads}")
            torch.set_num_threads(args.threads)
        if min(args.steps, args.ddp_steps, args.check_every) < 1:
            raise ValueError("--steps, --ddp-steps and --check-every must be at least 1")
        cfg = get_config(args.config)
        if not isinstance(cfg, GANConfig) or not cfg.conditional:
            raise ValueError(f"--config {args.config}: the benchmark times a class-conditional GAN config, "
                             f"e.g. mnist-projection")
        tee = _Tee(sys.stdout)
        with contextlib.redirect_stdout(tee):
            code = _bench(args, argv if argv is not None else sys.argv[1:])
    except (KeyError, ValueError, DataUnavailableError, hub.CheckpointError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("".join(tee.lines))
    return code


def _bench(args, argv: list[str]) -> int:
    device = resolve_device(args.device)
    cfg = get_config(args.config)
    started = time.perf_counter()
    print("command:  python -m condgan_lib.bench " + " ".join(shlex.quote(a) for a in argv))
    print(f"commit:   {git_commit()}    date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"hardware: {hardware(device)}, {os.cpu_count()} cores visible, "
          f"load average {os.getloadavg()[0]:.1f} at the start (other processes on the machine)")
    print(f"device: {device}, threads: {torch.get_num_threads()}, torch {torch.__version__}, config {cfg.name}, "
          f"batch {cfg.batch_size}")
    print(f"\n1. training step: {args.steps} steps on the same batches, the two loops alternating in chunks of "
          f"{max(1, args.steps // 10)}")
    plain, lib, ratio = step_throughput(cfg, device, args.steps)
    print(f"plain eager loop   {plain:9.0f} images/s")
    print(f"library gan_step   {lib:9.0f} images/s   ratio {ratio:.2f} (median of the chunks' ratios)")
    if device.startswith("cuda"):
        print(f"\n2. precision and compilation on CUDA (batch 512, ch 64), {args.steps} steps each")
        cuda_variants(cfg, device, args.steps)
    if args.processes > 1:
        threads = torch.get_num_threads()
        print(f"\n3. data parallel: the training command, {args.ddp_steps} steps, global batch {cfg.batch_size}, "
              f"{threads} thread(s) in all")
        rates = data_parallel_throughput(cfg, device, args.processes, args.ddp_steps, threads)
        print(f"1 process          {rates[1]:9.0f} images/s   ({threads} thread(s))")
        print(f"{args.processes} processes        {rates[args.processes]:9.0f} images/s   "
              f"ratio {rates[args.processes] / rates[1]:.2f}")
    if not args.skip_accuracy:
        print(f"\n4. training from scratch to {args.target:.0%} condition accuracy ({cfg.name}), "
              f"time budget {args.budget_s:.0f} s of training")
        print(f"  judged by {metrics.CLASSIFIER_FOR[cfg.dataset]} (sha256 {metrics.judge_sha256(cfg.dataset)})")
        r = time_to_accuracy(cfg, device, args.target, args.budget_s, args.check_every)
        if r["reached"]:
            print(f"reached {r['accuracy']:.3f} after {r['steps']} steps, {r['seconds']:.1f} s of training")
        else:
            print(f"not reached: {r['accuracy']:.3f} after {r['steps']} steps, {r['seconds']:.1f} s of training "
                  f"(budget {args.budget_s:.0f} s, at most {cfg.steps} steps)")
    print(f"\npeak memory        {peak_memory_mb(device):9.0f} MB")
    print(f"benchmark wall time {time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.1f} at the end")
    return 0


def cuda_variants(cfg, device: str, steps: int) -> None:
    """Eager fp32, bf16 autocast + channels_last, and torch.compile, as ratios to eager fp32 (GPU-sized batch)."""
    big = dataclasses.replace(cfg, batch_size=512, ch=64)
    data = load_images(cfg.dataset, "train")
    batches = [((data.images[i] * 2 - 1).to(device), data.labels[i].to(device))
               for i in (torch.randint(0, len(data.labels), (big.batch_size,)) for _ in range(steps + 10))]
    results = {}
    bf16 = lambda: torch.autocast("cuda", dtype=torch.bfloat16)  # noqa: E731
    for name, channels_last, autocast, compiled in (("eager fp32", False, contextlib.nullcontext, False),
                                                     ("bf16 + channels_last", True, bf16, False),
                                                     ("bf16 + channels_last + compile", True, bf16, True)):
        G, D, og, od = _fresh(big, device, channels_last)
        if compiled:
            G, D = torch.compile(G), torch.compile(D)
        if channels_last:
            batches_used = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]
        else:
            batches_used = batches
        library_loop(big, G, D, og, od, batches_used, 10, device, autocast)  # warm-up (and compilation)
        results[name] = library_loop(big, G, D, og, od, batches_used, steps, device, autocast)
        print(f"{name:32s} {results[name]:9.0f} images/s   ratio {results[name] / results['eager fp32']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
