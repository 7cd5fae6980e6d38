"""Benchmark of the training step, printed as ratios against a plain loop run in the same process.

    python -m condgan_lib.bench [--config mnist-projection] [--steps 200] [--skip-accuracy] [--device auto]

1. Images/s of the library's ``gan_step`` against a plain eager loop of the same model written out below
   (ratio >= 1.0 means the library's abstractions cost nothing).
2. Wall time from scratch until the EMA generator reaches the target condition accuracy (default 98 %).
3. Peak memory (resident set on CPU; allocated on CUDA).
4. On CUDA only: eager fp32 vs bf16 autocast + channels_last vs ``torch.compile``, each as a ratio to eager fp32.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import resource
import sys
import time

import torch
import torch.nn.functional as F

from . import hub, metrics
from .configs import get_config
from .data import load_images
from .train import build_models, gan_step, resolve_device, train_gan


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


def step_throughput(cfg, device: str, steps: int, repeats: int = 3) -> tuple[float, float]:
    """Median images/s of the plain loop and of the library step, alternated ``repeats`` times."""
    data = load_images(cfg.dataset, "train")
    gen = torch.Generator().manual_seed(0)
    idx = [torch.randint(0, len(data.labels), (cfg.batch_size,), generator=gen) for _ in range(steps + 5)]
    batches = [((data.images[i] * 2 - 1).to(device), data.labels[i].to(device)) for i in idx]
    plain, lib = [], []
    for _ in range(repeats):
        G, D, og, od = _fresh(cfg, device)
        plain_loop(G, D, og, od, batches, 5, cfg.z_dim, device)  # warm-up
        plain.append(plain_loop(G, D, og, od, batches, steps, cfg.z_dim, device))
        G, D, og, od = _fresh(cfg, device)
        library_loop(cfg, G, D, og, od, batches, 5, device)
        lib.append(library_loop(cfg, G, D, og, od, batches, steps, device))
    return sorted(plain)[len(plain) // 2], sorted(lib)[len(lib) // 2]


def time_to_accuracy(cfg, device: str, target: float, check_every: int = 250) -> tuple[float | None, int]:
    """Train from scratch in chunks; wall seconds (training only) until the EMA generator's condition accuracy
    on 1000 samples reaches ``target``, and the step count (``None`` if never within ``cfg.steps``)."""
    import tempfile
    classifier = hub.load_pretrained(metrics.CLASSIFIER_FOR[cfg.dataset])
    labels = torch.arange(10).repeat_interleave(100)
    out = tempfile.mkdtemp(prefix="bench-")
    for steps in range(check_every, cfg.steps + 1, check_every):
        run = dataclasses.replace(cfg, steps=steps, ckpt_every=check_every, eval_every=10 ** 9)
        result = train_gan(run, device=device, out=out, resume=steps > check_every, progress=False)
        acc = metrics.condition_accuracy(classifier, result["model"].generate(labels, seed=0), labels)
        print(f"  step {steps:5d}  {result['wall_time_s']:7.1f} s  condition accuracy {acc:.3f}", flush=True)
        if acc >= target:
            return result["wall_time_s"], steps
    return None, cfg.steps


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m condgan_lib.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="mnist-projection")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=100, help="steps per throughput measurement")
    parser.add_argument("--target", type=float, default=0.98, help="condition accuracy to reach")
    parser.add_argument("--skip-accuracy", action="store_true", help="skip the time-to-accuracy run")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    cfg = get_config(args.config)
    print(f"device: {device}, threads: {torch.get_num_threads()}, torch {torch.__version__}, config {cfg.name}, "
          f"batch {cfg.batch_size}")
    plain, lib = step_throughput(cfg, device, args.steps)
    print(f"plain eager loop   {plain:9.0f} images/s")
    print(f"library gan_step   {lib:9.0f} images/s   ratio {lib / plain:.2f}")
    if device.startswith("cuda"):
        cuda_variants(cfg, device, args.steps)
    if not args.skip_accuracy:
        print(f"time from scratch to {args.target:.0%} condition accuracy ({cfg.name}):")
        seconds, steps = time_to_accuracy(cfg, device, args.target)
        print(f"reached after {steps} steps, {seconds:.1f} s of training" if seconds is not None
              else f"not reached within {steps} steps")
    print(f"peak memory        {peak_memory_mb(device):9.0f} MB")
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
