"""Chapter "Measuring a GAN": numbers for generators: condition accuracy, FID, KID, precision and recall, each read against a real-data floor.

Features come from the book's own domain classifiers (``condgan_lib.classifier``), not Inception:
FID (Heusel et al., 2017) and KID (Binkowski et al., 2018) are computed by torchmetrics with that custom feature
extractor; precision and recall follow Kynkäänniemi et al. (2019): a sample is "precise" when it falls inside the
k-NN balls of the real features, and real data is "recalled" when it falls inside the k-NN balls of the fakes.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from .classifier import DomainClassifier
from .data import load_images
from .hub import load_pretrained, read_manifest

CLASSIFIER_FOR = {"mnist": "mnist-classifier", "fashion-mnist": "fashion-classifier"}


def judge_sha256(dataset: str) -> str:
    """The sha256 of the shipped classifier that judges ``dataset``: stored measurements name their judge by it, so
    that a retrained judge shows which of them it leaves stale (tests/test_metrics.py)."""
    return read_manifest()[CLASSIFIER_FOR[dataset]]["sha256"]


@torch.no_grad()
def features(classifier: DomainClassifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Penultimate classifier features of images in [0, 1]."""
    classifier.eval()
    return torch.cat([classifier.features(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


class PrecomputedFeatures(nn.Module):
    """Identity "extractor": lets torchmetrics' FID and KID take features that were computed once, up front."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return feats


def frechet_distance_of_features(real_feats: torch.Tensor, fake_feats: torch.Tensor) -> float:
    """FID between two sets of features, via torchmetrics' ``FrechetInceptionDistance``."""
    fid = FrechetInceptionDistance(feature=PrecomputedFeatures(real_feats.shape[1]))
    fid.update(real_feats, real=True)
    fid.update(fake_feats, real=False)
    return float(fid.compute())


def kernel_distance_of_features(real_feats: torch.Tensor, fake_feats: torch.Tensor, seed: int = 0,
                                subsets: int = 50) -> float:
    """KID (mean over random subsets of up to 500) between two sets of features, via torchmetrics."""
    size = min(len(real_feats), len(fake_feats), 500)
    with warnings.catch_warnings():  # torchmetrics warns that KID keeps all features in memory: 2 x 2000 x 128 here
        warnings.filterwarnings("ignore", message="Metric `Kernel Inception Distance`")
        kid = KernelInceptionDistance(feature=PrecomputedFeatures(real_feats.shape[1]), subsets=subsets,
                                      subset_size=size)
    kid.update(real_feats, real=True)
    kid.update(fake_feats, real=False)
    state = torch.get_rng_state()
    torch.manual_seed(seed)  # KID draws its subsets with the global generator
    mean, _ = kid.compute()
    torch.set_rng_state(state)
    return float(mean)


def frechet_distance(classifier: DomainClassifier, real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID in the classifier's feature space of two sets of images in [0, 1]."""
    return frechet_distance_of_features(features(classifier, real), features(classifier, fake))


def kernel_distance(classifier: DomainClassifier, real: torch.Tensor, fake: torch.Tensor, seed: int = 0,
                    subsets: int = 50) -> float:
    """KID in the classifier's feature space of two sets of images in [0, 1]."""
    return kernel_distance_of_features(features(classifier, real), features(classifier, fake), seed, subsets)


def knn_radii(feats: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    if len(feats) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} points per set, got {len(feats)}; "
                         f"use more samples")
    d = torch.cdist(feats, feats)
    return d.kthvalue(k + 1, dim=1).values


def precision_recall(real_feats: torch.Tensor, fake_feats: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) with k-NN manifolds of radius ``k``."""
    real_r, fake_r = knn_radii(real_feats, k), knn_radii(fake_feats, k)
    d = torch.cdist(fake_feats, real_feats)                       # [n_fake, n_real]
    precision = (d <= real_r[None, :]).any(dim=1).float().mean()  # fake inside some real ball
    recall = (d <= fake_r[:, None]).any(dim=0).float().mean()     # real inside some fake ball
    return precision.item(), recall.item()


def condition_accuracy(classifier: DomainClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images the independent classifier assigns to the requested class."""
    return (classifier.predict(images) == labels).float().mean().item()


@torch.no_grad()
def judged_classes(classifier: DomainClassifier, images: torch.Tensor, threshold: float = 0.9) -> dict:
    """What the judge sees in a batch of unlabelled samples: the share it classifies with probability >= ``threshold``
    ("looks like some digit"), how many samples fall in each class, and the most over-represented class's count
    divided by the least represented's (1 for a perfectly balanced generator, None when a class is missing)."""
    classifier.eval()
    probs = torch.cat([classifier(images[i:i + 1000]).softmax(1) for i in range(0, len(images), 1000)])
    counts = torch.bincount(probs.argmax(1), minlength=10).tolist()
    return {"confident_share": round((probs.max(1).values >= threshold).float().mean().item(), 4),
            "class_counts": counts,
            "class_ratio": round(max(counts) / min(counts), 3) if min(counts) else None}


def score_images(classifier: DomainClassifier, real: torch.Tensor, real_labels: torch.Tensor,
                 fake: torch.Tensor, fake_labels: torch.Tensor | None, seed: int = 0) -> dict:
    """Every metric of ``fake`` against ``real``: FID, KID, precision, recall, and (conditional) condition accuracy
    and the lowest per-class recall."""
    real_f, fake_f = features(classifier, real), features(classifier, fake)  # one pass; every metric reuses them
    precision, recall = precision_recall(real_f, fake_f)
    out = {"fid": frechet_distance_of_features(real_f, fake_f), "kid": kernel_distance_of_features(real_f, fake_f, seed),
           "precision": precision, "recall": recall}
    if fake_labels is not None:
        with torch.no_grad():
            predicted = classifier.head(fake_f).argmax(1)
        out["condition_accuracy"] = (predicted == fake_labels).float().mean().item()
        out["min_class_recall"] = min(
            precision_recall(real_f[real_labels == c], fake_f[fake_labels == c])[1] for c in range(10))
    return {k: round(v, 4) for k, v in out.items()}


def balanced_sample(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of ``n // 10`` random examples of each of the ten classes, drawn with ``seed`` from the whole split."""
    if n % 10 or n < 10:
        raise ValueError(f"n must be a positive multiple of 10 (one tenth per class), not {n}")
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(10):
        idx = (labels == c).nonzero().squeeze(1)
        if len(idx) < n // 10:
            raise ValueError(f"class {c} has only {len(idx)} images; n={n} needs {n // 10} per class")
        picks.append(idx[torch.randperm(len(idx), generator=gen)[: n // 10]])
    return torch.cat(picks)


def reference_sets(dataset: str, n: int, seed: int = 0) -> tuple:
    """Two disjoint real sets of ``n`` class-balanced images, drawn at random with ``seed``: the reference, from the
    test split, and a second real set, from the train split, that gives the real-vs-real floor.

    Random draws over the whole split matter: MNIST's test split is two halves of different difficulty, and its first
    images are not a fair sample of it.
    """
    test, train = load_images(dataset, "test"), load_images(dataset, "train")
    ref, other = balanced_sample(test.labels, n, seed), balanced_sample(train.labels, n, seed + 1)
    return test.images[ref], test.labels[ref], train.images[other], train.labels[other]


def sample_generator(generator: nn.Module, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` samples in [0, 1] (class-balanced labels for a conditional generator) with a fixed seed."""
    if getattr(generator, "n_classes", 0):
        labels = torch.arange(10).repeat_interleave(n // 10)
        return torch.cat([generator.generate(labels[i:i + 1000], seed=seed + i) for i in range(0, len(labels), 1000)]
                         ).cpu(), labels
    return torch.cat([generator.generate(min(1000, n - i), seed=seed + i) for i in range(0, n, 1000)]).cpu(), None


def evaluate_generator(generator: nn.Module, dataset: str, classifier: DomainClassifier | None = None,
                       n: int = 2000, seed: int = 0) -> dict:
    """Score a generator on ``n`` samples against ``n`` real test images; see ``score_images``."""
    if classifier is None:
        classifier = load_pretrained(CLASSIFIER_FOR[dataset])
    real, real_labels, _, _ = reference_sets(dataset, n)
    was_training = generator.training
    generator.eval()
    fake, fake_labels = sample_generator(generator, n, seed)
    generator.train(was_training)
    # unconditional generators: score condition accuracy against the real label mix is meaningless; leave it out
    return {**score_images(classifier, real, real_labels, fake, fake_labels, seed), "n": n}


def real_floor(dataset: str, classifier: DomainClassifier | None = None, n: int = 2000, seed: int = 0) -> dict:
    """The same metrics for real train images against the real test reference: the best a generator can hope for."""
    if classifier is None:
        classifier = load_pretrained(CLASSIFIER_FOR[dataset])
    real, real_labels, other, other_labels = reference_sets(dataset, n)
    return {**score_images(classifier, real, real_labels, other, other_labels, seed), "n": n}
