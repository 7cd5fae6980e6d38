"""Chapter "CLIP and DALL-E 2's real design, in miniature": CLIP in miniature: an image encoder and a text encoder trained so that an image and its caption get nearby
embeddings (Radford et al., 2021), on the captioned shapes of ``condgan_lib.shapes``.

- ``ImageEncoder``: a small CNN, ``[N, 3, 32, 32]`` in [0, 1] -> an embedding.
- ``CLIPModel``: both encoders, each followed by a linear projection into one shared space, unit-normalised, and a
  learned temperature ``tau``: the logit of the pair (image i, caption j) is ``cos(i, j) / tau``.
- ``clip_loss``: the symmetric contrastive (InfoNCE) loss, a cross-entropy over the captions of a batch for every
  image and over the images for every caption, averaged.
- ``retrieval_recall``, ``zero_shot_predict``, ``measure_clip``: what a trained CLIP is measured by.
- ``train_clip``: the trainer behind ``python -m condgan_lib.train --config shapes-clip``.

DALL-E 2 (unCLIP, Ramesh et al., 2022) is built on a frozen CLIP; ``condgan_lib.unclip`` builds the rest on this one.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import registry, shapes, text
from .configs import CLIPConfig
from .data import random_batches
from .engine import RunContext, TrainResult, TrainState, fit, loss_step

MAX_LOGIT_SCALE = 100.0  # CLIP clips 1 / tau at 100 so that the logits cannot grow without bound


class ImageEncoder(nn.Module):
    """A small CNN: ``[N, 3, 32, 32]`` in [0, 1] -> ``[N, out_dim]`` features.

    Three strided convolutions take the image to a ``[4ch, 4, 4]`` map that is flattened, not pooled: *where* a shape
    sits is one of the attributes a caption names, and a global pool would throw it away.
    """

    def __init__(self, out_dim: int = 64, ch: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, ch, 4, 2, 1), nn.ReLU(),               # 16 x 16
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.ReLU(),          # 8 x 8
            nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1), nn.ReLU(),      # 4 x 4
            nn.Flatten(), nn.Linear(4 * ch * 16, out_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images * 2 - 1)


class CLIPModel(nn.Module):
    """Image and text encoders with linear projections into one ``embed_dim``-d space and a learned temperature.

    ``encode_images`` and ``encode_captions`` return unit vectors; ``forward(images, tokens)`` returns the
    ``[N, N]`` logits ``cos(image_i, caption_j) / tau`` that ``clip_loss`` takes.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, ch: int = 32, text_dim: int = 64,
                 init_temperature: float = 0.07):
        super().__init__()
        self.embed_dim = embed_dim
        self.image_encoder = ImageEncoder(out_dim=4 * ch, ch=ch)
        self.text_encoder = text.TextEncoder(vocab_size, text_dim)
        self.image_projection = nn.Linear(4 * ch, embed_dim, bias=False)
        self.text_projection = nn.Linear(text_dim, embed_dim, bias=False)
        # CLIP learns log(1 / tau) ("logit scale"), initialised at tau = 0.07
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))

    @property
    def temperature(self) -> float:
        """The learned temperature ``tau`` (the logits are cosines divided by it)."""
        return 1.0 / self.logit_scale.detach().clamp(max=math.log(MAX_LOGIT_SCALE)).exp().item()

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings ``[N, embed_dim]`` of images in [0, 1]."""
        return F.normalize(self.image_projection(self.image_encoder(images)), dim=-1)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings of token ids ``[N, L]`` (0 = padding), as ``text.VOCAB.encode`` makes them."""
        return F.normalize(self.text_projection(self.text_encoder(tokens)), dim=-1)

    @torch.no_grad()
    def encode_captions(self, captions: list[str]) -> torch.Tensor:
        """Unit-norm embeddings of caption strings (no gradient: for using a trained model)."""
        device = self.logit_scale.device
        return self.encode_tokens(text.VOCAB.encode(list(captions)).to(device))

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, N]``: entry ``(i, j)`` scores image ``i`` against caption ``j``."""
        scale = self.logit_scale.clamp(max=math.log(MAX_LOGIT_SCALE)).exp()
        return scale * self.encode_images(images) @ self.encode_tokens(tokens).T


def clip_loss(logits_per_image: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: the mean of the image->caption and caption->image cross-entropies (matches on the diagonal)."""
    targets = torch.arange(len(logits_per_image), device=logits_per_image.device)
    return (F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_image.T, targets)) / 2


# ------------------------------------------------------------------------------------------------- measuring

def retrieval_recall(query: torch.Tensor, gallery: torch.Tensor, correct: torch.Tensor,
                     ks: tuple[int, ...] = (1, 5)) -> dict:
    """Recall@k: the share of queries with a correct gallery item among their ``k`` most similar.

    ``query`` ``[Q, d]`` and ``gallery`` ``[G, d]`` are unit vectors; ``correct`` is a ``[Q, G]`` boolean matrix that
    says which gallery items count as a match for each query (the identity for plain paired data).
    """
    order = (query @ gallery.T).argsort(dim=1, descending=True)
    hits = correct.gather(1, order)                  # hits[q, r]: is the r-th ranked item correct for query q?
    return {k: hits[:, :k].any(dim=1).float().mean().item() for k in ks}


def zero_shot_predict(model: CLIPModel, images: torch.Tensor, prompts: list[list[str]]) -> torch.Tensor:
    """Classify images with no training: class ``c`` is the mean embedding of its prompts ``prompts[c]``
    (CLIP's prompt ensembling); each image gets the class whose embedding is most similar to its own."""
    with torch.no_grad():
        classes = torch.stack([F.normalize(model.encode_captions(p).mean(0), dim=0) for p in prompts])
        return (model.encode_images(images) @ classes.T).argmax(dim=1).cpu()


def attribute_prompts(attribute: str, per_combination: int = 2, seed: int = 0) -> list[list[str]]:
    """For each value of ``attribute``, the prompts whose mean embedding stands for it in zero-shot classification:
    captions of every combination of the other attributes with that value, ``per_combination`` wordings each."""
    rng = np.random.default_rng(seed)
    position = list(shapes.ATTRIBUTES).index(attribute)
    prompts: list[list[str]] = [[] for _ in shapes.ATTRIBUTES[attribute]]
    for combination in itertools.product(*shapes.ATTRIBUTES.values()):
        value = shapes.ATTRIBUTES[attribute].index(combination[position])
        prompts[value] += [shapes.caption_for(combination, rng) for _ in range(per_combination)]
    return prompts


def same_attributes(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[len(a), len(b)]`` booleans: do the two objects agree on every attribute (i.e. share a caption's meaning)?"""
    return (a[:, None, :] == b[None, :, :]).all(dim=-1)


@torch.no_grad()
def measure_clip(model: CLIPModel, n: int = 1000, seed: int = 10_000, split: str = "test") -> dict:
    """Retrieval recall@1/@5 in both directions on ``n`` held-out pairs, zero-shot accuracy per attribute, and the
    temperature. A retrieved item counts as correct when it has the same attributes as the query's own pair."""
    model.eval()
    batch = shapes.sample_batch(n, seed=seed, split=split)
    img, txt = model.encode_images(batch.images), model.encode_captions(batch.captions)
    correct = same_attributes(batch.attributes, batch.attributes)
    t2i, i2t = retrieval_recall(txt, img, correct), retrieval_recall(img, txt, correct)
    out = {"recall_t2i@1": t2i[1], "recall_t2i@5": t2i[5], "recall_i2t@1": i2t[1], "recall_i2t@5": i2t[5]}
    for i, attribute in enumerate(shapes.ATTRIBUTES):
        predicted = zero_shot_predict(model, batch.images, attribute_prompts(attribute))
        out[f"zero_shot_{attribute}"] = (predicted == batch.attributes[:, i]).float().mean().item()
    out["zero_shot_mean"] = sum(out[f"zero_shot_{a}"] for a in shapes.ATTRIBUTES) / len(shapes.ATTRIBUTES)
    out = {k: round(v, 4) for k, v in out.items()}
    return {**out, "temperature": round(model.temperature, 5), "n": n}


# ------------------------------------------------------------------------------------------------- the trainer

def training_pairs(n: int, seed: int) -> shapes.ShapesBatch:
    """The fixed training set of a run: ``n`` captioned images of the train split, drawn once with ``seed``."""
    return shapes.sample_batch(n, seed=seed, split="train")


def train_clip(cfg: CLIPConfig, ctx: RunContext) -> TrainResult:
    """Train ``CLIPModel`` with ``clip_loss`` on ``cfg.train_size`` pairs, on the training engine."""
    cfg.validate()
    device = ctx.device
    torch.manual_seed(cfg.seed)
    kwargs = {"vocab_size": len(text.VOCAB), "embed_dim": cfg.embed_dim, "ch": cfg.ch, "text_dim": cfg.text_dim,
              "init_temperature": cfg.init_temperature}
    model = CLIPModel(**kwargs).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    data = training_pairs(cfg.train_size, cfg.seed)
    images, tokens = data.images.to(device), text.VOCAB.encode(data.captions).to(device)
    state = TrainState(modules={"model": model}, optimizers={"model": opt}, ema_of="model")

    def make_step(start: int):
        batches = random_batches(images, torch.arange(len(images), device=device), cfg.batch_size, seed=cfg.seed,
                                 start_step=start)
        step = loss_step(model, opt, batches, lambda batch: clip_loss(model(batch[0], tokens[batch[1]])))
        scale = math.log(MAX_LOGIT_SCALE)
        return lambda i: {**step(i), "temperature": 1 / model.logit_scale.detach().clamp(max=scale).exp()}

    fit(cfg, state, make_step, ctx)
    model = model.cpu().eval()
    measured = measure_clip(model) if ctx.evaluate else {}
    return TrainResult(model=model, kwargs=kwargs, steps=cfg.steps, wall_time_s=state.wall_time_s,
                       history=state.history, metrics=measured)


def remeasure_clip(name: str, entry: dict, load, n: int | None = None) -> dict:
    """The manifest metrics of a shipped CLIP, measured again (``python -m condgan_lib.evaluate``)."""
    return measure_clip(load(name), n=n or entry["metrics"].get("n", 1000))


registry.register(registry.Family(
    name="clip", chapter="book/clip_unclip.ipynb", config_class=CLIPConfig, trainer=train_clip,
    model_classes=(CLIPModel,), remeasure=remeasure_clip, vocabulary=lambda: text.VOCAB.words, generator=False))
