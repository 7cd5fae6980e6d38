"""Chapter "Text to image with a conditional GAN": reading attributes back from images: a probe trained on real rendered scenes, and text-image alignment metrics.

A text-to-image model is aligned when its image shows what the caption says. On the scenes of
``condgan_lib.shapes`` that is measurable: ``AttributeProbe``, a small CNN trained only on real rendered scenes
(every shape-colour combination, held-out ones included, since it is a judge, not a generator), says for each of
the four quadrants whether it holds an object and that object's shape, colour and size. From it:

- ``attribute_accuracy(probe, images, attributes) -> dict[str, float]``: for one-object images, the share whose
  shape, colour, size and position (the most object-like quadrant) match ``attributes`` [n, 4]; "all" = all four.
- ``binding_metrics(probe, images, batch) -> dict[str, float]``: for two-object images, whether the two objects
  have the right shape-colour pairs (``objects``), the pairs swapped (``swapped``: the attribute-binding failure),
  the right bag of shapes and colours whatever the pairing (``attribute_bag``), the share of those bound correctly
  (``binding``) and the right spatial relation (``relation``).

Public interface (stable): ``AttributeProbe``, shipped as checkpoint ``shapes-probe`` (``load_probe()``),
``attribute_accuracy``, ``read_attributes``, ``read_objects``, ``binding_metrics``, ``train_probe``,
``evaluate_probe``.
"""
from __future__ import annotations

import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import hub, registry
from .configs import ProbeConfig
from .engine import RunContext, TrainResult
from .shapes import ATTRIBUTES, ShapesBatch, sample_batch

N_SHAPES, N_COLOURS, N_SIZES = (len(ATTRIBUTES[k]) for k in ("shape", "colour", "size"))
EMPTY = N_SHAPES                       # the "no object here" class of the per-quadrant shape head
EVAL_SEED = 777                        # the fixed seed of every evaluation set


class AttributeProbe(nn.Module):
    """CNN: images ``[N, 3, 32, 32]`` in [0, 1] -> per quadrant logits for shape-or-empty, colour and size."""

    def __init__(self, ch: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, ch // 2, 3, 1, 1), nn.ReLU(),          # 32x32: edges and corners of small shapes
            nn.Conv2d(ch // 2, ch, 4, 2, 1), nn.ReLU(),         # 16x16
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.ReLU(),          # 8x8
            nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1), nn.ReLU(),      # 4x4
            nn.Flatten(), nn.Linear(4 * ch * 16, 128), nn.ReLU())
        self.head = nn.Linear(128, 4 * (N_SHAPES + 1 + N_COLOURS + N_SIZES))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(shape_or_empty [N, 4, S+1], colour [N, 4, C], size [N, 4, Z])`` logits, one row per quadrant."""
        out = self.head(self.features(images * 2 - 1)).view(len(images), 4, -1)
        return out.split([N_SHAPES + 1, N_COLOURS, N_SIZES], dim=2)


def quadrant_targets(batch: ShapesBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-quadrant targets ``[n, 4]``: shape (EMPTY where no object), colour and size (-1 where no object)."""
    n = len(batch)
    shape = torch.full((n, 4), EMPTY, dtype=torch.long)
    colour = torch.full((n, 4), -1, dtype=torch.long)
    size = torch.full((n, 4), -1, dtype=torch.long)
    rows = torch.arange(n)
    for obj in (batch.attributes, batch.second_attributes):
        there = obj[:, 0] >= 0
        r, q = rows[there], obj[there, 3]
        shape[r, q], colour[r, q], size[r, q] = obj[there, 0], obj[there, 1], obj[there, 2]
    return shape, colour, size


def probe_loss(probe: AttributeProbe, batch: ShapesBatch, images: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of the three per-quadrant heads (colour and size only where there is an object)."""
    logits = probe(batch.images if images is None else images)
    return sum(F.cross_entropy(l.flatten(0, 1), t.flatten(), ignore_index=-1)
               for l, t in zip(logits, quadrant_targets(batch)))


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pixel noise and, for a quarter of the images, a slight blur: so that imperfect generated images read well."""
    n = len(images)
    noise = torch.randn(images.shape, generator=generator) * torch.rand(n, 1, 1, 1, generator=generator) * 0.08
    blurred = F.avg_pool2d(images, 3, 1, 1, count_include_pad=False)
    blur = (torch.rand(n, 1, 1, 1, generator=generator) < 0.25).float() * 0.6
    return (images * (1 - blur) + blurred * blur + noise).clamp(0, 1)


def train_probe(steps: int = 1500, batch_size: int = 128, lr: float = 2e-3, ch: int = 32, seed: int = 0,
                two_objects: float = 0.5, heldout_every: int = 4, progress: bool = True) -> AttributeProbe:
    """Train the probe on freshly rendered scenes (one batch per step, held-out combinations every few steps)."""
    torch.manual_seed(seed)
    probe = AttributeProbe(ch=ch)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    noise = torch.Generator().manual_seed(seed)
    probe.train()
    for step in tqdm(range(steps), desc="probe", disable=not progress):
        split = "heldout" if step % heldout_every == heldout_every - 1 else "train"
        batch = sample_batch(batch_size, seed=seed * 1_000_003 + step, split=split, two_objects=two_objects)
        loss = probe_loss(probe, batch, augment(batch.images, noise))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return probe.eval()


@torch.no_grad()
def read_objects(probe: AttributeProbe, images: torch.Tensor, k: int = 2, batch_size: int = 500) -> dict:
    """The ``k`` most object-like quadrants of each image, most likely first, and what the probe reads there.

    Returns a dict of ``[n, k]`` tensors: ``shape``, ``colour``, ``size``, ``position`` (the quadrant) and
    ``objectness`` (the probability that the quadrant holds an object); ``[n, 4]`` ``objectness_all``.
    """
    probe.eval()
    outs = [probe(images[i:i + batch_size].float()) for i in range(0, len(images), batch_size)]
    shape_l, colour_l, size_l = (torch.cat([o[j] for o in outs]) for j in range(3))
    objectness = 1 - shape_l.softmax(-1)[..., EMPTY]                       # [n, 4]
    position = objectness.argsort(dim=1, descending=True, stable=True)[:, :k]
    pick = lambda t: t.gather(1, position[..., None].expand(-1, -1, t.shape[-1]))  # noqa: E731
    return {"shape": pick(shape_l[..., :N_SHAPES]).argmax(-1), "colour": pick(colour_l).argmax(-1),
            "size": pick(size_l).argmax(-1), "position": position, "objectness": objectness.gather(1, position),
            "objectness_all": objectness}


def read_attributes(probe: AttributeProbe, images: torch.Tensor) -> torch.Tensor:
    """``[n, 4]`` attribute indices (shape, colour, size, position) of the one object in each image."""
    o = read_objects(probe, images, k=1)
    return torch.stack([o["shape"][:, 0], o["colour"][:, 0], o["size"][:, 0], o["position"][:, 0]], 1)


def attribute_accuracy(probe: AttributeProbe, images: torch.Tensor, attributes: torch.Tensor) -> dict[str, float]:
    """Share of one-object images whose shape, colour, size, position (and "all" four) the probe reads as given."""
    hit = read_attributes(probe, images) == attributes[:, :4]
    out = {key: float(hit[:, i].float().mean()) for i, key in enumerate(ATTRIBUTES)}
    out["all"] = float(hit.all(1).float().mean())
    return out


def _stands(relation: int, first_quadrant: int, second_quadrant: int) -> bool:
    """Whether quadrant ``first`` is RELATION of quadrant ``second`` (quadrant = 2 * row + column)."""
    (r1, c1), (r2, c2) = divmod(first_quadrant, 2), divmod(second_quadrant, 2)
    return {0: c1 < c2, 1: c1 > c2, 2: r1 < r2, 3: r1 > r2}[relation]


def binding_metrics(probe: AttributeProbe, images: torch.Tensor, batch: ShapesBatch) -> dict[str, float]:
    """Attribute binding on two-object images generated for ``batch.captions`` (see the module docstring)."""
    two = batch.two_object
    if not two.any():
        raise ValueError("binding_metrics needs two-object captions (sample_batch(..., two_objects=1.0))")
    o = read_objects(probe, images[two], k=2)
    first, second, relations = batch.attributes[two], batch.second_attributes[two], batch.relations[two]
    counts = dict(objects=0, swapped=0, attribute_bag=0, relation=0, two_objects_drawn=0)
    for i in range(len(first)):
        seen = {(int(o["shape"][i, j]), int(o["colour"][i, j])): int(o["position"][i, j]) for j in range(2)}
        a, b = (int(first[i, 0]), int(first[i, 1])), (int(second[i, 0]), int(second[i, 1]))
        right, swapped = {a, b}, {(a[0], b[1]), (b[0], a[1])}
        counts["objects"] += set(seen) == right
        counts["swapped"] += set(seen) == swapped
        counts["attribute_bag"] += set(seen) in (right, swapped)
        counts["relation"] += set(seen) == right and _stands(int(relations[i]), seen[a], seen[b])
        counts["two_objects_drawn"] += bool((o["objectness_all"][i] > 0.5).sum() == 2)
    n = len(first)
    out = {k: v / n for k, v in counts.items()}
    out["binding"] = counts["objects"] / max(1, counts["attribute_bag"])
    return out


def evaluate_probe(probe: AttributeProbe, n: int = 1000) -> dict:
    """The probe's own accuracy on real scenes it never saw: one-object test and held-out scenes, two-object scenes."""
    test = sample_batch(n, EVAL_SEED, "test")
    held = sample_batch(n, EVAL_SEED, "heldout")
    pairs = sample_batch(n, EVAL_SEED, "test", two_objects=1.0)
    acc_test, acc_held = attribute_accuracy(probe, test.images, test.attributes), \
        attribute_accuracy(probe, held.images, held.attributes)
    bind = binding_metrics(probe, pairs.images, pairs)
    out = {"n": n}
    out.update({f"real_test_{k}": round(v, 4) for k, v in acc_test.items()})
    out.update({f"real_heldout_{k}": round(v, 4) for k, v in acc_held.items()})
    out.update({f"real_two_object_{k}": round(bind[k], 4) for k in ("objects", "relation")})
    return out


PROBE_NAME = "shapes-probe"


def load_probe() -> AttributeProbe:
    """The shipped ``shapes-probe`` checkpoint."""
    return hub.load_pretrained(PROBE_NAME)


def load_probe_or_none() -> AttributeProbe | None:
    """The shipped probe, or None (with a note on stderr) where it is not shipped: trainers then skip alignment."""
    probe = hub.load_optional(PROBE_NAME)
    if probe is None:
        print(f"no shipped {PROBE_NAME!r}: alignment is not measured", file=sys.stderr)
    return probe


def run_probe(cfg: ProbeConfig, ctx: RunContext) -> TrainResult:
    """The trainer of ``ProbeConfig`` for ``python -m condgan_lib.train``: one short loop, no checkpoints."""
    t0 = time.perf_counter()
    probe = train_probe(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, ch=cfg.ch, seed=cfg.seed,
                        two_objects=cfg.two_objects, progress=ctx.progress)
    wall = round(time.perf_counter() - t0, 1)
    measured = evaluate_probe(probe, n=cfg.eval_samples) if ctx.evaluate else {}
    return TrainResult(model=probe, kwargs={"ch": cfg.ch}, steps=cfg.steps, wall_time_s=wall, history=[],
                       metrics=measured)


def remeasure_probe(name: str, entry: dict, load, n: int | None = None) -> dict:
    """The manifest metrics of the shipped probe, measured again (``python -m condgan_lib.evaluate``)."""
    return evaluate_probe(load(name), n=n or entry["metrics"].get("n", 1000))


registry.register(registry.Family(
    name="probe", chapter="book/text_to_image.ipynb", config_class=ProbeConfig, trainer=run_probe,
    model_classes=(AttributeProbe,), remeasure=remeasure_probe, resumable=False, generator=False))

__all__ = ["AttributeProbe", "attribute_accuracy", "binding_metrics", "read_objects", "read_attributes",
           "train_probe", "evaluate_probe", "load_probe", "load_probe_or_none"]
