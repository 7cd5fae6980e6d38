"""Chapter "Measuring a GAN": domain classifiers for MNIST and Fashion-MNIST, the independent judge of generated images.

Their 128-d penultimate features are the feature space of FID, KID and precision/recall in this book:
Inception weights cannot be downloaded offline, and Inception features mean little on 28x28 grey digits.
"""
from __future__ import annotations

import time

import torch
from torch import nn
from tqdm.auto import tqdm

from . import registry
from .configs import ClassifierConfig
from .data import load_images, random_batches
from .engine import RunContext, TrainResult


class DomainClassifier(nn.Module):
    """A small CNN: ``[N, 1, 28, 28]`` in [0, 1] -> 10 class logits; ``features(x)`` gives the 128-d penultimate layer."""

    def __init__(self, n_classes: int = 10, feature_dim: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 7 * 7, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (after ReLU) of images in [0, 1]."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Predicted labels for images in [0, 1], in batches."""
        self.eval()
        device = next(self.parameters()).device
        return torch.cat([self(x[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)])


@torch.no_grad()
def accuracy(model: DomainClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images whose predicted label equals ``labels``."""
    return (model.predict(images) == labels).float().mean().item()


def train_classifier(cfg: ClassifierConfig, device: str = "cpu", progress: bool = True) -> tuple[DomainClassifier, dict]:
    """Train a ``DomainClassifier`` on the training split of ``cfg.dataset``; returns it and its test metrics."""
    torch.manual_seed(cfg.seed)
    train = load_images(cfg.dataset, "train")
    model = DomainClassifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = cfg.epochs * (len(train.images) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr * 3, total_steps=steps)
    batches = random_batches(train.images, train.labels, cfg.batch_size, seed=cfg.seed)
    model.train()
    bar = tqdm(range(steps), desc=cfg.name, disable=not progress)
    for step in bar:
        x, y = next(batches)
        x = x + 0.0  # copy: augment below must not touch the cached dataset
        shift = torch.randint(-2, 3, (2,)).tolist()  # small random translation
        x = torch.roll(x, shifts=shift, dims=(2, 3))
        loss = nn.functional.cross_entropy(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model = model.cpu().eval()
    return model, measure_classifier(model, cfg.dataset)


@torch.no_grad()
def measure_classifier(model: DomainClassifier, dataset: str) -> dict:
    """Accuracy on the whole test split, overall and per class."""
    test = load_images(dataset, "test")
    pred = model.predict(test.images)
    per_class = [(pred[test.labels == c] == c).float().mean().item() for c in range(10)]
    return {"test_accuracy": round((pred == test.labels).float().mean().item(), 4),
            "per_class_accuracy": [round(a, 4) for a in per_class]}


def run_classifier(cfg: ClassifierConfig, ctx: RunContext) -> TrainResult:
    """The trainer of ``ClassifierConfig`` for ``python -m condgan_lib.train``: one short loop, no checkpoints."""
    t0 = time.perf_counter()
    model, measured = train_classifier(cfg, device=ctx.device, progress=ctx.progress)
    steps = cfg.epochs * (len(load_images(cfg.dataset, "train").images) // cfg.batch_size)
    return TrainResult(model=model, kwargs={}, steps=steps, wall_time_s=round(time.perf_counter() - t0, 1),
                       history=[], metrics=measured)


def remeasure_classifier(name: str, entry: dict, load, n: int | None = None) -> dict:
    """The manifest metrics of a shipped classifier, measured again (``python -m condgan_lib.evaluate``)."""
    return measure_classifier(load(name), entry["config"]["dataset"])


registry.register(registry.Family(
    name="classifier", chapter="book/measuring.ipynb", config_class=ClassifierConfig, trainer=run_classifier,
    model_classes=(DomainClassifier,), remeasure=remeasure_classifier, resumable=False, generator=False))
