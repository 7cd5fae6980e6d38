"""The measured sweeps of the chapter "Diffusion, the engine DALL-E 2 really uses" that take too long to run live.

    python scripts/diffusion_sweeps.py --run runs/mnist-diffusion [--n 1000] [--out FILE] [--keep]

``--run`` is the folder of the training run that shipped ``mnist-diffusion``
(``python -m condgan_lib.train --config mnist-diffusion --out runs/mnist-diffusion``); the run keeps every checkpoint.
On one CPU thread, for the shipped model and with the book's metrics (``metrics.score_images`` against
``metrics.reference_sets("mnist", n)``), it measures:

1. DDIM steps (1 to 100) at the default guidance: condition accuracy, FID, precision, recall, milliseconds per image;
2. the guidance scale (0 to 6) at the default steps: the same numbers;
3. the ancestral DDPM sampler at the same numbers of steps, and at the defaults two choices of ``generate``'s DDIM
   undone: starting from the last step (999) instead of ``diffusion.first_sampling_step``, and clipping the guess of
   ``x_0`` to [-1, 1] (as the unCLIP chapter's decoder does);
4. the seconds per training step of both recipes, ``mnist-projection`` and ``mnist-diffusion``, in this process on
   one thread (each the difference of a short and a longer fresh run, so that set-up cancels; the faster of two
   rounds). The two shipped runs were made at different times, on different thread counts and under different
   loads, so these times are compared, not the runs' recorded wall times;
5. the model as it was after the GAN's training time: the EMA (and the raw network) of the run's checkpoint nearest
   to the step that costs as much as the GAN's whole run by 4., at the defaults, on 2,000 samples like the
   manifest's numbers;
6. the same metrics and milliseconds per image for ``mnist-projection`` itself (measured again with ``--keep`` when
   only that model changed).

It writes one JSON file (default ``condgan_lib/artifacts/diffusion/sweeps.json``) that the chapter reads, with the
run's ``history.json``, the condition accuracy of every checkpoint's EMA by step (measured as the training command
measures it: 200 samples, 10 DDIM steps), and the SHA-256 of the measured model.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from condgan_lib import diffusion, engine, fileio, hub, metrics, runs
from condgan_lib.engine import make_ema

ROOT = Path(__file__).resolve().parents[1]
STEPS = [1, 2, 5, 10, 25, 50, 100]
GUIDANCE = [0.0, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0, 4.0, 6.0]
DDPM_STEPS = [10, 25, 50, 100]


JUDGE_FREE = ("step_time",)   # sections a new judge leaves as they are (--keep): timings


def score(generate, n: int, judge, reference: tuple) -> dict:
    """Metrics of ``n`` class-balanced samples of ``generate(labels, seed)`` and their milliseconds per image."""
    labels = torch.arange(10).repeat_interleave(n // 10)
    start = time.perf_counter()
    fake = torch.cat([generate(labels[i:i + 1000], i) for i in range(0, n, 1000)])
    ms = 1000 * (time.perf_counter() - start) / n
    real, real_labels = reference
    return {**metrics.score_images(judge, real, real_labels, fake, labels), "ms_per_image": round(ms, 3), "n": n}


@torch.no_grad()
def ddim_variant(model, labels: torch.Tensor, seed: int, start: int, clip: bool) -> torch.Tensor:
    """``generate``'s DDIM at the default steps and guidance, from step ``start``, clipping ``x_0`` or not."""
    x = torch.randn(len(labels), 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    ts = torch.linspace(start, 0, diffusion.DEFAULT_STEPS).round().long().tolist()
    for i, t in enumerate(ts):
        eps = torch.cat([model.guided_noise(x[j:j + 128], t, labels[j:j + 128], diffusion.DEFAULT_GUIDANCE)
                         for j in range(0, len(x), 128)])
        a_prev = model.alpha_bar[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
        x = diffusion.ddim_step(x, eps, model.alpha_bar[t], a_prev, clip=clip)
    return (x.clamp(-1, 1) + 1) / 2


def checkpoint_near(run: Path, step: float) -> dict:
    """The run's checkpoint whose step is closest to ``step``."""
    paths = engine.checkpoints_in(run)
    if not paths:
        raise SystemExit(f"no checkpoints in {run / 'checkpoints'}")
    best = min(paths, key=lambda path: abs(engine.checkpoint_step(path) - step))
    return torch.load(best, map_location="cpu", weights_only=True)


def seconds_per_step(name: str, short: int, long: int, rounds: int = 2) -> float:
    """Training seconds per step of config ``name`` here: the difference between fresh runs of ``short`` and ``long``
    steps (no evaluation, no checkpoint in between), so that set-up and the first slow steps cancel; the fastest of
    ``rounds``, so that a burst of other load changes nothing."""
    best = float("inf")
    for _ in range(rounds):
        walls = []
        for steps in (short, long):
            with tempfile.TemporaryDirectory() as out:
                run = runs.run_config(name, device="cpu", out=out, progress=False, evaluate=False, steps=steps,
                                      eval_every=10 ** 6, ckpt_every=10 ** 6)
            walls.append(run.result.wall_time_s)
        best = min(best, (walls[1] - walls[0]) / (long - short))
    return best


def ema_model(state: dict, kwargs: dict) -> diffusion.ClassConditionalUNet:
    """The EMA network stored in a training checkpoint."""
    ema = make_ema(diffusion.ClassConditionalUNet(**kwargs), 0.999)
    ema.load_state_dict(state["ema"])
    return ema.module.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="the training run folder of mnist-diffusion")
    parser.add_argument("--n", type=int, default=1000, help="samples per setting (default 1000)")
    parser.add_argument("--out", type=Path, default=ROOT / "condgan_lib/artifacts/diffusion/sweeps.json")
    parser.add_argument("--keep", action="store_true",
                        help="reuse the sections an interrupted sweep of the same model already wrote (OUT.partial), "
                             "or, after a complete one, those a new judge does not read (JUDGE_FREE)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    manifest = hub.read_manifest()
    model, gan = hub.load_pretrained("mnist-diffusion"), hub.load_pretrained("mnist-projection")
    judge = hub.load_pretrained("mnist-classifier")
    real, real_labels, _, _ = metrics.reference_sets("mnist", args.n)
    reference = (real, real_labels)
    out: dict = {"command": "python scripts/diffusion_sweeps.py " + " ".join(sys.argv[1:] if argv is None else argv),
                 "hardware": fileio.hardware("cpu", 1, None), "n": args.n,
                 "defaults": {"steps": diffusion.DEFAULT_STEPS, "guidance": diffusion.DEFAULT_GUIDANCE},
                 "model_sha256": manifest["mnist-diffusion"]["sha256"],
                 "gan_sha256": manifest["mnist-projection"]["sha256"],
                 "judge_sha256": metrics.judge_sha256("mnist")}
    partial = args.out.with_name(args.out.name + ".partial")
    earlier = partial if partial.exists() else args.out      # an interrupted sweep, else the last complete one
    kept = json.loads(earlier.read_text()) if args.keep and earlier.exists() else {}
    if any(kept.get(k) != out[k] for k in ("n", "defaults", "model_sha256")):
        kept = {}                                # another model, sample size or defaults: measure again
    elif kept.get("judge_sha256") != out["judge_sha256"]:   # another judge: only what it does not read is kept
        kept = {k: kept[k] for k in JUDGE_FREE if k in kept}
    if kept.get("gan_sha256") != out["gan_sha256"]:
        kept.pop("gan", None)                            # another GAN: measure its section again
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def section(key: str, measure) -> None:
        """``out[key] = measure()``, or the value an interrupted sweep kept; saved to OUT.partial at once."""
        out[key] = kept[key] if key in kept else measure()
        partial.write_text(json.dumps(out, indent=1) + "\n")

    def log(what: str, result: dict) -> dict:
        print(f"{what:28s} acc {result['condition_accuracy']:.3f}  FID {result['fid']:6.2f}  "
              f"P {result['precision']:.3f}  R {result['recall']:.3f}  {result['ms_per_image']:.2f} ms/image",
              flush=True)
        return result

    section("floor", lambda: metrics.real_floor("mnist", classifier=judge, n=args.n))
    section("gan", lambda: log("mnist-projection", score(lambda y, s: gan.generate(y, seed=s), args.n, judge,
                                                          reference)))
    defaults = {"steps": diffusion.DEFAULT_STEPS, "guidance": diffusion.DEFAULT_GUIDANCE, "sampler": "ddim"}
    measured: dict = {}                                  # settings already measured, by their full description

    def entry(key: str, name: str, measure) -> None:
        """``out[key][name] = measure()`` (or what an interrupted sweep kept), saved at once."""
        out.setdefault(key, {})
        done = kept.get(key, {})
        out[key][name] = done[name] if name in done else measure()
        partial.write_text(json.dumps(out, indent=1) + "\n")

    sweeps = (("steps", STEPS, lambda v: dict(steps=v)), ("guidance", GUIDANCE, lambda v: dict(guidance=v)),
              ("ddpm_steps", DDPM_STEPS, lambda v: dict(steps=v, sampler="ddpm")))
    for key, values, settings in sweeps:               # what an interrupted sweep kept, by its full description
        for value in values:
            if str(value) in kept.get(key, {}):
                measured[json.dumps({**defaults, **settings(value)}, sort_keys=True)] = kept[key][str(value)]
    for key, values, settings in sweeps:
        for value in values:
            kw = {**defaults, **settings(value)}
            same = json.dumps(kw, sort_keys=True)          # a setting measured under another key is not measured again
            if same not in measured:
                measured[same] = log(f"{key} {value}", score(lambda y, s: model.generate(y, seed=s, **kw), args.n,
                                                              judge, reference))
            entry(key, str(value), lambda: measured[same])
            measured[same] = out[key][str(value)]

    first = diffusion.first_sampling_step(model.alpha_bar)
    for start, clip in ((first, False), (model.timesteps - 1, False), (first, True), (model.timesteps - 1, True)):
        name = f"start {start}, {'clip' if clip else 'no clip'}"
        entry("ddim_variants", name, lambda: log(name, score(lambda y, s: ddim_variant(model, y, s, start, clip),
                                                             args.n, judge, reference)))

    section("step_time", lambda: {"gan_s": round(seconds_per_step("mnist-projection", 50, 450), 4),
                                   "diffusion_s": round(seconds_per_step("mnist-diffusion", 20, 120), 4)})
    out["step_time"]["ratio"] = round(out["step_time"]["diffusion_s"] / out["step_time"]["gan_s"], 2)
    print(f"seconds per training step: GAN {out['step_time']['gan_s']:.4f}, diffusion "
          f"{out['step_time']['diffusion_s']:.4f} ({out['step_time']['ratio']:.1f} times)", flush=True)
    gan_steps = manifest["mnist-projection"]["steps"]
    equal_step = gan_steps * out["step_time"]["gan_s"] / out["step_time"]["diffusion_s"]
    state = checkpoint_near(args.run, equal_step)
    kwargs = {k: state["config"][k] for k in ("ch", "timesteps", "schedule")}
    raw = diffusion.ClassConditionalUNet(**kwargs)
    raw.load_state_dict(state["modules"]["model"])
    real2, real2_labels, _, _ = metrics.reference_sets("mnist", 2000)
    for key, network, what in (("equal_time", ema_model(state, kwargs), f"equal time (step {state['step']})"),
                               ("equal_time_raw", raw.eval(), "  the same, without EMA")):
        section(key, lambda: {"gan_steps": gan_steps, "equal_step": round(equal_step), "step": state["step"],
                              **log(what, score(lambda y, s: network.generate(y, seed=s), 2000, judge,
                                                (real2, real2_labels)))})
    section("history", lambda: [{k: v for k, v in h.items() if k != "condition_accuracy"}   # the losses: the
                                for h in json.loads((args.run / "history.json").read_text())])  # judge reads "curve"

    for path in reversed(engine.checkpoints_in(args.run)):   # every checkpoint's EMA, as the training command measures
        state = torch.load(path, map_location="cpu", weights_only=True)
        cfg = state["config"]

        def point() -> dict:
            ema = ema_model(state, {k: cfg[k] for k in ("ch", "timesteps", "schedule")})
            accuracy = diffusion.quick_condition_accuracy(ema, judge, cfg["eval_samples"], cfg["eval_steps"])
            print(f"step {state['step']:6d} {state['wall_time_s']:7.0f} s  condition accuracy {accuracy:.3f}",
                  flush=True)
            return {"step": state["step"], "wall_time_s": round(state["wall_time_s"], 1),
                    "condition_accuracy": round(accuracy, 4)}
        entry("curve", str(state["step"]), point)
    out["curve"] = list(out["curve"].values())          # in the order of the steps
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    partial.unlink()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
