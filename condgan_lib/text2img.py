"""Chapter "Text to image with a conditional GAN": a text-conditional GAN in the spirit of GAN-INT-CLS (Reed et al., 2016), on the scenes of ``condgan_lib.shapes``.

- ``TextToImageGenerator``: caption -> frozen ``TextEncoder`` -> sentence embedding ``t``; ``[z; t]`` -> linear ->
  ``[4ch, 4, 4]`` -> two up-sampling blocks -> ``[3, 32, 32]``, tanh (DCGAN's layout). ``t`` enters twice: in the first
  layer (so it can decide *where* things go) and through text-conditional batch norm before every up-sampling (so it
  can decide *what* they look like). ``generate(captions, seed)`` returns ``[N, 3, 32, 32]`` in [0, 1].
- Two matching-aware discriminators: ``ProjectionTextDiscriminator`` scores ``psi(phi(x)) + <W t, phi(x)>``
  (Miyato & Koyama, 2018) and ``ConcatTextDiscriminator`` concatenates ``t``, replicated spatially, to the 4x4
  image features (Reed et al.). Both are spectrally normalised and trained with the hinge loss.
- The matching-aware loss (GAN-CLS): a real image with a *mismatched* caption counts as fake, so D must check the
  caption, not only realism. Interpolation (GAN-INT): G is also scored on embeddings halfway between two captions.
- The text encoder, ``CaptionTagger``, is pre-trained to tag every word with what it means (``pretrain_tagger``),
  then frozen, as Reed et al. pre-train their text encoder with class-level supervision before training the GAN.
  Its embedding is a sum over words, so a combination never seen in training ("red triangle") is encoded from
  parts that were. The obvious alternative, a whole-sentence embedding trained to predict the caption's attributes
  (``pretrain_sentence_encoder``), learns that held-out combinations do not exist.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from tqdm.auto import tqdm

from . import losses, registry
from .configs import TextGANConfig
from .engine import RunContext, TrainResult, TrainState, backward_step, fit, make_ema
from .layers import FiLMBatchNorm2d, sample_latents, sn_trunk
from .probe import EVAL_SEED, attribute_accuracy, binding_metrics, load_probe, load_probe_or_none
from .shapes import ATTRIBUTES, COLOUR_WORDS, RELATIONS, SHAPE_WORDS, SIZE_WORDS, sample_batch
from .text import VOCAB, EmptyCaptionError, TextEncoder, tokenize

# -------------------------------------------------------------------------------------------------- the text side

# What a word can mean: an attribute value of the first or the second object, a row or column of a one-object
# scene, or a relation between two objects. Every other word ("a", "the", "in", ...) is tagged "none".
TAGS: tuple[str, ...] = (
    *(f"{slot} {key} {value}" for slot in ("first", "second") for key in ("shape", "colour", "size")
      for value in ATTRIBUTES[key]),
    "row top", "row bottom", "column left", "column right", *(f"relation {r}" for r in RELATIONS))
NONE_TAG = len(TAGS)                                             # the extra class of the tagger's output
_WORD_VALUE = {w: (key, value) for key, table in (("shape", SHAPE_WORDS), ("colour", COLOUR_WORDS),
                                                  ("size", SIZE_WORDS)) for value, words in table.items() for w in words}
_ROW = {"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom"}
_RELATION_WORD = {"left": "left of", "right": "right of", "top": "above", "above": "above", "over": "above",
                  "below": "below", "under": "below", "beneath": "below"}


def word_tags(caption: str, first: torch.Tensor, second: torch.Tensor, relation: int) -> list[int]:
    """The tag of every word of a grammar caption (the tagger's training target); see ``TAGS``.

    A size or colour word belongs to the object whose shape word comes next (or, in "a small circle coloured red",
    the only object); in a two-object caption that object is the first or the second by its shape.
    """
    words = tokenize(caption)
    tags = [NONE_TAG] * len(words)
    shapes_of = {0: ATTRIBUTES["shape"][int(first[0])]}
    if relation >= 0:
        shapes_of[1] = ATTRIBUTES["shape"][int(second[0])]
    slot_of_shape = {shape: slot for slot, shape in shapes_of.items()}
    next_slot, current = [0] * len(words), 0
    for i in reversed(range(len(words))):                         # the slot of the next shape word, scanning back
        if _WORD_VALUE.get(words[i], ("",))[0] == "shape":
            current = slot_of_shape[_WORD_VALUE[words[i]][1]]
        next_slot[i] = current
    for i, w in enumerate(words):
        if w in _WORD_VALUE:
            key, value = _WORD_VALUE[w]
            slot = slot_of_shape[value] if key == "shape" else next_slot[i] if relation >= 0 else 0
            tags[i] = TAGS.index(f"{('first', 'second')[slot]} {key} {value}")
        elif relation >= 0 and w in _RELATION_WORD:
            tags[i] = TAGS.index(f"relation {_RELATION_WORD[w]}")
        elif relation < 0 and w in _ROW:
            tags[i] = TAGS.index(f"row {_ROW[w]}")
        elif relation < 0 and w in ("left", "right"):
            tags[i] = TAGS.index(f"column {w}")
    return tags


class CaptionTagger(nn.Module):
    """A text encoder built for composition: a bidirectional GRU tags every word with what it means (``TAGS``), and the
    sentence embedding is the sum of the tag probabilities, a "bag of meanings" ``[N, len(TAGS)]``.

    The GRU is needed for context (which object does "red" describe?); the sum makes the embedding of an unseen
    combination, "red triangle", the sum of parts it has seen.
    """

    def __init__(self, vocab_size: int = len(VOCAB), word_dim: int = 32, hidden: int = 64):
        super().__init__()
        self.dim = len(TAGS)
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, hidden, batch_first=True, bidirectional=True)
        self.tagger = nn.Linear(2 * hidden, len(TAGS) + 1)

    def tag_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[N, L, len(TAGS) + 1]`` logits of every word's tag (the last class is "none")."""
        lengths = (tokens != 0).sum(1)
        if (lengths == 0).any():
            raise EmptyCaptionError("a row of tokens is all padding (an empty caption)")
        packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=tokens.shape[1])
        return self.tagger(out)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        probs = self.tag_logits(tokens).softmax(-1)[..., :NONE_TAG] * (tokens != 0)[..., None]
        return probs.sum(1)

    def encode_captions(self, captions: list[str], vocab=VOCAB) -> torch.Tensor:
        """Sentence embeddings ``[N, len(TAGS)]`` of a list of captions."""
        return self(vocab.encode(captions).to(self.tagger.weight.device))


def read_embedding(t: torch.Tensor) -> torch.Tensor:
    """``[N, 4]`` attribute indices of the first object that a one-object caption's bag of meanings names."""
    def group(prefix: str) -> torch.Tensor:
        idx = [i for i, name in enumerate(TAGS) if name.startswith(prefix)]
        return t[:, idx].argmax(1)
    return torch.stack([group("first shape"), group("first colour"), group("first size"),
                        2 * group("row ") + group("column ")], 1)


def tagging_targets(batch) -> torch.Tensor:
    """``[N, L]`` tag targets of a batch's captions, -1 on padding."""
    rows = [word_tags(c, f, s, int(r)) for c, f, s, r in
            zip(batch.captions, batch.attributes, batch.second_attributes, batch.relations)]
    out = torch.full((len(rows), max(map(len, rows))), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row)
    return out


def pretrain_tagger(tagger: CaptionTagger, steps: int = 300, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
                    two_objects: float = 0.5, progress: bool = True) -> dict:
    """Train the tagger on train-split captions; returns word and caption accuracy on test and held-out captions."""
    opt = torch.optim.Adam(tagger.parameters(), lr=lr)
    tagger.train()
    for step in tqdm(range(steps), desc="text encoder", disable=not progress):
        batch = sample_batch(batch_size, seed=seed * 1_000_003 + 500_000 + step, split="train",
                             two_objects=two_objects)
        logits = tagger.tag_logits(VOCAB.encode(batch.captions))
        loss = F.cross_entropy(logits.flatten(0, 1), tagging_targets(batch).flatten(), ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    tagger.eval()
    return {"text_loss": round(float(loss.detach()), 4), **caption_accuracy(tagger)}


@torch.no_grad()
def caption_accuracy(encoder: CaptionTagger, n: int = 1000) -> dict:
    """Share of captions whose embedding names all four attributes right (one object), test and held-out."""
    out = {}
    for split in ("test", "heldout"):
        batch = sample_batch(n, EVAL_SEED, split)
        read = read_embedding(encoder(VOCAB.encode(batch.captions)))
        out[f"caption_accuracy_{split}"] = round(float((read == batch.attributes).all(1).float().mean()), 4)
    return out


class CaptionAttributeHeads(nn.Module):
    """The obvious alternative: linear read-outs of a whole-sentence embedding, trained on what each caption says."""

    def __init__(self, dim: int):
        super().__init__()
        self.heads = nn.ModuleDict({k: nn.Linear(dim, len(v)) for k, v in ATTRIBUTES.items()})

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """``[N, 4]`` predicted attribute indices."""
        return torch.stack([self.heads[k](t).argmax(1) for k in ATTRIBUTES], 1)

    def loss(self, t: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        return sum(F.cross_entropy(self.heads[k](t), attributes[:, i]) for i, k in enumerate(ATTRIBUTES))


def pretrain_sentence_encoder(encoder: TextEncoder, steps: int = 200, batch_size: int = 64, lr: float = 3e-3,
                              seed: int = 0) -> dict:
    """Train ``encoder`` + ``CaptionAttributeHeads`` on one-object train captions; caption accuracy test/held-out."""
    heads = CaptionAttributeHeads(encoder.dim)
    opt = torch.optim.Adam([*encoder.parameters(), *heads.parameters()], lr=lr)
    for step in range(steps):
        batch = sample_batch(batch_size, seed=seed * 1_000_003 + 500_000 + step, split="train")
        loss = heads.loss(encoder(VOCAB.encode(batch.captions)), batch.attributes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    out = {}
    with torch.no_grad():
        for split in ("test", "heldout"):
            batch = sample_batch(1000, EVAL_SEED, split)
            read = heads(encoder(VOCAB.encode(batch.captions)))
            out[f"caption_accuracy_{split}"] = round(float((read == batch.attributes).all(1).float().mean()), 4)
    return out


# ------------------------------------------------------------------------------------------------- the generator


class TextToImageGenerator(nn.Module):
    """``G(z, t)``: noise and a sentence embedding -> a 32x32 RGB image in [-1, 1]; holds its frozen text encoder."""

    def __init__(self, z_dim: int = 32, ch: int = 24, vocab_size: int = len(VOCAB), word_dim: int = 32,
                 hidden: int = 64):
        super().__init__()
        self.text_encoder = CaptionTagger(vocab_size, word_dim, hidden)
        text_dim = self.text_encoder.dim
        self.z_dim, self.text_dim = z_dim, text_dim
        self.fc = nn.Linear(z_dim + text_dim, 4 * ch * 4 * 4)
        widths = [4 * ch, 2 * ch, ch, 3]
        self.norms = nn.ModuleList([FiLMBatchNorm2d(w, text_dim) for w in widths[:-1]])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(a, b, 4, 2, 1) for a, b in zip(widths, widths[1:])])

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from latents ``z`` [N, z_dim] and sentence embeddings ``t`` [N, text_dim]."""
        h = self.fc(torch.cat([z, t], 1)).view(len(z), -1, 4, 4)
        for norm, up in zip(self.norms, self.ups):
            h = up(F.relu(norm(h, t)))                          # 4 -> 8 -> 16 -> 32
        return torch.tanh(h)

    @torch.no_grad()
    def embed(self, captions: list[str]) -> torch.Tensor:
        """Sentence embeddings ``[N, text_dim]`` of captions (clear errors for unknown words or empty captions)."""
        return self.text_encoder.encode_captions(captions)

    @torch.no_grad()
    def generate_from_embeddings(self, t: torch.Tensor, seed: int | None = None,
                                 z: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] from sentence embeddings (e.g. interpolated ones) and seeded (or given) noise."""
        device = self.fc.weight.device
        z = sample_latents(len(t), self.z_dim, seed, device) if z is None else z.to(device)
        return (self(z, t.to(device)).float() + 1) / 2

    @torch.no_grad()
    def generate(self, captions: list[str], seed: int | None = None) -> torch.Tensor:
        """``[N, 3, 32, 32]`` images in [0, 1], one per caption; the same seed gives the same images."""
        return self.generate_from_embeddings(self.embed(captions), seed)


# --------------------------------------------------------------------------------------------- the discriminators


class ProjectionTextDiscriminator(nn.Module):
    """``D(x, t) = psi(phi(x)) + <W t, phi(x)>``; ``phi`` keeps the 4x4 layout (flattened) because position matters."""

    def __init__(self, ch: int = 32, text_dim: int = 64):
        super().__init__()
        self.trunk = nn.Sequential(*sn_trunk(ch))
        self.head = spectral_norm(nn.Linear(4 * ch * 16, 1))
        self.project = spectral_norm(nn.Linear(text_dim, 4 * ch * 16, bias=False))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``phi(x)``: the image's features, computed once however many captions it is scored with."""
        return self.trunk(x).flatten(1)

    def score(self, phi: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.head(phi).squeeze(1) + (self.project(t) * phi).sum(1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x), t)


class ConcatTextDiscriminator(nn.Module):
    """Reed et al.'s discriminator: ``t`` (compressed) replicated over the 4x4 map, concatenated, then 1x1 and 4x4 convs."""

    def __init__(self, ch: int = 32, text_dim: int = 64):
        super().__init__()
        self.trunk = nn.Sequential(*sn_trunk(ch))
        self.compress = spectral_norm(nn.Linear(text_dim, ch))
        self.joint = nn.Sequential(spectral_norm(nn.Conv2d(5 * ch, 4 * ch, 1)), nn.LeakyReLU(0.2),
                                   spectral_norm(nn.Conv2d(4 * ch, 1, 4)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def score(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        text = F.leaky_relu(self.compress(t), 0.2)[:, :, None, None].expand(-1, -1, *h.shape[2:])
        return self.joint(torch.cat([h, text], 1)).flatten()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x), t)


DISCRIMINATORS = {"projection": ProjectionTextDiscriminator, "concat": ConcatTextDiscriminator}


# ------------------------------------------------------------------------------------------------------- the losses


def matching_aware_d_loss(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, t: torch.Tensor,
                          t_wrong: torch.Tensor) -> torch.Tensor:
    """GAN-CLS with the hinge: real+right caption is real; real+wrong caption and fake+right caption are fake (1/2 each)."""
    phi_real = D.features(real)                                 # the real images' features serve both captions
    return (F.relu(1 - D.score(phi_real, t)).mean()
            + 0.5 * F.relu(1 + D.score(phi_real, t_wrong)).mean()
            + 0.5 * F.relu(1 + D(fake, t)).mean())


def interpolate_embeddings(t: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """GAN-INT: ``beta * t_i + (1 - beta) * t_{i+1}``, points between the captions of a batch and their neighbours."""
    return beta * t + (1 - beta) * t.roll(1, 0)


def text_gan_step(G, D, opt_g, opt_d, real: torch.Tensor, t: torch.Tensor, z: torch.Tensor, z_int: torch.Tensor,
                  interpolation_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One step: D on (real, right), (real, wrong) and (fake, right); then G on its fakes and on interpolations."""
    t_wrong = t.roll(1, 0)                                      # another scene's caption
    fake = G(z, t)
    d_loss = matching_aware_d_loss(D, real, fake.detach(), t, t_wrong)
    backward_step(d_loss, opt_d)
    g_loss = losses.hinge_g_loss(D(fake, t))
    if interpolation_weight > 0:
        t_int = interpolate_embeddings(t[:len(z_int)])
        g_loss = g_loss + interpolation_weight * losses.hinge_g_loss(D(G(z_int, t_int), t_int))
    backward_step(g_loss, opt_g)
    return d_loss.detach(), g_loss.detach()


# ---------------------------------------------------------------------------------------------------- measuring


@torch.no_grad()
def evaluate_alignment(G: TextToImageGenerator, probe, n: int = 500) -> dict:
    """Probe-read alignment of ``G`` for fixed held-out captions: one-object test and held-out, two-object binding."""
    G.eval()
    out: dict = {"n": n}
    for split in ("test", "heldout"):
        batch = sample_batch(n, EVAL_SEED, split)
        acc = attribute_accuracy(probe, G.generate(batch.captions, seed=EVAL_SEED), batch.attributes)
        out.update({f"{split}_{k}": round(v, 4) for k, v in acc.items()})
    pairs = sample_batch(n, EVAL_SEED, "test", two_objects=1.0)
    bind = binding_metrics(probe, G.generate(pairs.captions, seed=EVAL_SEED), pairs)
    out.update({f"two_object_{k}": round(v, 4) for k, v in bind.items()})
    return out


# ----------------------------------------------------------------------------------------------------- training


def build_text_gan(cfg: TextGANConfig) -> tuple[TextToImageGenerator, nn.Module, dict]:
    """Generator, discriminator and the generator's constructor arguments for a ``TextGANConfig``."""
    g_kwargs = {"z_dim": cfg.z_dim, "ch": cfg.ch}
    G = TextToImageGenerator(**g_kwargs)
    return G, DISCRIMINATORS[cfg.discriminator](cfg.ch, G.text_dim), g_kwargs


ALIGNMENT_KEYS = ("test_shape", "test_all", "heldout_all", "two_object_objects")  # logged every ``eval_every`` steps


def train_text_gan(cfg: TextGANConfig, device: str = "cpu", out: str | Path | None = None, resume: bool = False,
                   progress: bool = True, nan_at_step: int | None = None, ctx: RunContext | None = None) -> TrainResult:
    """Pre-train the text encoder, then train the GAN with ``text_gan_step`` on the training engine; the result's
    model is the EMA generator, its ``metrics`` the text encoder's accuracy. The training command passes its
    ``ctx`` instead of the keyword arguments."""
    cfg.validate()
    ctx = ctx or RunContext(device=device, out=Path(out or Path("runs") / cfg.name), resume=resume,
                            progress=progress, nan_at_step=nan_at_step)
    device, progress = ctx.device, ctx.progress
    torch.manual_seed(cfg.seed)
    G, D, g_kwargs = build_text_gan(cfg)
    G.text_encoder.requires_grad_(False)
    G, D = G.to(device), D.to(device)
    g_params = [p for n, p in G.named_parameters() if not n.startswith("text_encoder.")]
    opt_g = torch.optim.Adam(g_params, lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
    state = TrainState(modules={"G": G, "D": D}, optimizers={"G": opt_g, "D": opt_d}, generators={"noise": noise_gen},
                       ema=make_ema(G, cfg.ema_decay), ema_of="G")
    n_int = max(1, cfg.batch_size // 4)                    # GAN-INT on a quarter batch: cheap, and enough

    def pretrain() -> None:
        encoder = G.text_encoder.cpu().requires_grad_(True)
        state.extra["text_metrics"] = pretrain_tagger(encoder, cfg.text_pretrain_steps, seed=cfg.seed,
                                                      progress=progress)
        encoder.requires_grad_(False).to(device)
        print(f"text encoder pre-trained: {state.extra['text_metrics']}", file=sys.stderr)

    def make_step(start: int):
        def step(i: int) -> dict[str, torch.Tensor]:
            G.train(), D.train()
            G.text_encoder.eval()                          # frozen: no dropout, fixed embeddings
            # the batch at each step is a function of (seed, step): a resumed run sees the same scenes
            batch = sample_batch(cfg.batch_size, seed=cfg.seed * 1_000_003 + i, split="train",
                                 two_objects=cfg.two_objects)
            with torch.no_grad():
                t = G.text_encoder(VOCAB.encode(batch.captions).to(device))
            z = torch.randn(cfg.batch_size, cfg.z_dim, generator=noise_gen).to(device)
            z_int = torch.randn(n_int, cfg.z_dim, generator=noise_gen).to(device)
            d_loss, g_loss = text_gan_step(G, D, opt_g, opt_d, batch.images.to(device) * 2 - 1, t, z, z_int,
                                           cfg.interpolation_weight)
            return {"d_loss": d_loss, "g_loss": g_loss}
        return step

    judge = load_probe_or_none()

    def alignment(model: nn.Module) -> dict:           # how alignment evolves, in the history
        read = evaluate_alignment(model, judge, n=200)
        return {k: read[k] for k in ALIGNMENT_KEYS}

    fit(cfg, state, make_step, ctx, evaluate=alignment if judge is not None else None, eval_every=cfg.eval_every,
        fresh_start=pretrain)
    final = state.final_model().float().eval().cpu()
    return TrainResult(model=final, kwargs=g_kwargs, steps=cfg.steps, wall_time_s=state.wall_time_s,
                       history=state.history, metrics=dict(state.extra.get("text_metrics", {})))


def run_text_gan(cfg: TextGANConfig, ctx: RunContext) -> TrainResult:
    """The trainer of ``TextGANConfig`` for ``python -m condgan_lib.train``: train, then measure alignment."""
    result = train_text_gan(cfg, ctx=ctx)
    probe = load_probe_or_none() if ctx.evaluate else None
    result.metrics = {**evaluate_alignment(result.model, probe, n=cfg.eval_samples), **result.metrics} \
        if probe is not None else {}
    return result


def remeasure_text_gan(name: str, entry: dict, load, n: int | None = None) -> dict:
    """The manifest metrics of a shipped text-to-image generator, measured again (``python -m condgan_lib.evaluate``)."""
    G = load(name)
    return {**evaluate_alignment(G, load_probe(), n=n or entry["metrics"].get("n", 500)),
            **caption_accuracy(G.text_encoder)}


registry.register(registry.Family(
    name="text-gan", chapter="book/text_to_image.ipynb", config_class=TextGANConfig, trainer=run_text_gan,
    model_classes=(TextToImageGenerator,), remeasure=remeasure_text_gan, vocabulary=lambda: VOCAB.words))
