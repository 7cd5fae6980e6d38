"""Training configurations: one plain dataclass per shipped model, with CPU-sized and GPU-sized variants.

``CONFIGS["mnist-projection"]`` is the CPU recipe that produced the shipped checkpoint;
``CONFIGS["mnist-projection-gpu"]`` is the same model with the batch, steps and precision of a real GPU run.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

MODELS = ("mlp", "dcgan", "concat", "acgan", "projection")
DATASETS = ("mnist", "fashion-mnist")


@dataclass
class GANConfig:
    """Everything that defines one GAN training run."""
    name: str
    dataset: str = "mnist"            # "mnist" or "fashion-mnist"
    model: str = "projection"         # one of MODELS: which discriminator (and whether G is conditional)
    loss: str = "hinge"               # "bce" (non-saturating) or "hinge"
    z_dim: int = 64
    ch: int = 32                      # base channel width of G and D
    batch_size: int = 64
    steps: int = 3000
    lr_g: float = 1e-3                # G learns 5x faster than D: small D nets otherwise win the game early
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.9)
    acgan_weight: float = 1.0         # weight of the auxiliary class loss (AC-GAN only)
    sn_embedding: bool = True         # projection D: spectral norm on the class embedding too (as in the paper's code)
    acgan_classify_fakes: bool = False  # AC-GAN: D's class loss also on fakes (the paper) or on real images only
    ema_decay: float = 0.999          # generator EMA; 0 disables it
    diffaugment: bool = False         # DiffAugment (Zhao et al., 2020): translation + cutout on real and fake
    amp: str = "none"                 # "none", "bf16" or "fp16" autocast
    channels_last: bool = False
    compile: bool = False             # torch.compile the two networks
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500
    eval_every: int = 500
    eval_samples: int = 1000
    lr_scale_with_batch: bool = False  # scale both learning rates linearly with batch_size / 64
    export_raw_generator: bool = False  # also ship the non-EMA generator as NAME-raw (to measure what EMA does)

    @property
    def conditional(self) -> bool:
        return self.model in ("concat", "acgan", "projection")

    def validate(self) -> "GANConfig":
        """Return self, or raise ValueError naming the bad field and the values it may take."""
        checks = [
            (self.dataset in DATASETS, f"dataset must be one of {DATASETS}, not {self.dataset!r}"),
            (self.model in MODELS, f"model must be one of {MODELS}, not {self.model!r}"),
            (self.loss in ("bce", "hinge"), f"loss must be 'bce' or 'hinge', not {self.loss!r}"),
            (self.amp in ("none", "bf16", "fp16"), f"amp must be 'none', 'bf16' or 'fp16', not {self.amp!r}"),
            (self.steps >= 1, f"steps must be >= 1, not {self.steps}"),
            (self.batch_size >= 2, f"batch_size must be >= 2, not {self.batch_size}"),
            (self.lr_g > 0 and self.lr_d > 0, f"learning rates must be positive, not lr_g={self.lr_g}, lr_d={self.lr_d}"),
            (0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), not {self.ema_decay}"),
            (self.z_dim >= 1 and self.ch >= 1, f"z_dim and ch must be positive, not {self.z_dim}, {self.ch}"),
            (self.ckpt_every >= 1 and self.log_every >= 1 and self.eval_every >= 1,
             "ckpt_every, log_every and eval_every must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"config {self.name!r}: {message}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class ClassifierConfig:
    """A domain classifier: the independent judge of condition accuracy and the feature space of FID/KID."""
    name: str
    dataset: str = "mnist"
    epochs: int = 2
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0

    def validate(self) -> "ClassifierConfig":
        if self.dataset not in DATASETS:
            raise ValueError(f"config {self.name!r}: dataset must be one of {DATASETS}, not {self.dataset!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"config {self.name!r}: epochs, batch_size and lr must be positive")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def gpu_variant(cfg: GANConfig) -> GANConfig:
    """The GPU-sized version of a CPU recipe: 4x batch with linearly scaled learning rates, wider nets, bf16."""
    return dataclasses.replace(cfg, name=cfg.name + "-gpu", batch_size=256, ch=64, steps=cfg.steps * 3,
                               lr_scale_with_batch=True, amp="bf16", channels_last=True, ckpt_every=2000,
                               eval_every=2000, eval_samples=5000)


_CONDITIONAL = dict(lr_g=3e-3, lr_d=3e-3, ema_decay=0.995, steps=10000)

_CPU = [
    # the judges are trained until they are clearly more accurate than the targets they check (0.99 and 0.90)
    ClassifierConfig("mnist-classifier", dataset="mnist", epochs=6),
    ClassifierConfig("fashion-classifier", dataset="fashion-mnist", epochs=12),
    # DCGAN's own recipe: Adam(2e-4, betas 0.5/0.999) for both networks, batch norm in G and D
    GANConfig("mnist-mlp", dataset="mnist", model="mlp", loss="bce", lr_g=2e-4, betas=(0.5, 0.999), steps=3000),
    GANConfig("mnist-dcgan", dataset="mnist", model="dcgan", loss="bce", lr_g=2e-4, betas=(0.5, 0.999), steps=3000),
    GANConfig("fashion-dcgan", dataset="fashion-mnist", model="dcgan", loss="bce", lr_g=2e-4, betas=(0.5, 0.999),
              steps=3000),
    # the conditional recipe, shared by all four: the same G, Adam(0, 0.9), batch 64, 10,000 steps, and D as fast
    # as G at a high rate (3e-3 for both), with a short generator average (EMA 0.995). D and loss follow each paper;
    # the projection D leaves its class table free of spectral norm. Both choices make the label learnt sooner: the
    # chapter "Class-conditional GANs" measures them against the earlier recipes (lr 1e-3 or 2e-4 for D, EMA 0.999).
    GANConfig("mnist-concat", dataset="mnist", model="concat", loss="bce", **_CONDITIONAL),
    GANConfig("mnist-acgan", dataset="mnist", model="acgan", loss="bce", **_CONDITIONAL),
    GANConfig("mnist-projection", dataset="mnist", model="projection", loss="hinge", sn_embedding=False,
              export_raw_generator=True, **_CONDITIONAL),
    # Fashion-MNIST's classes differ in texture and detail: at ch 32 condition accuracy stalls near 0.89, twice the
    # width passes 0.90 by step 2,000 and needs fewer steps (measured in the chapter "Class-conditional GANs")
    GANConfig("fashion-projection", dataset="fashion-mnist", model="projection", loss="hinge", sn_embedding=False,
              **{**_CONDITIONAL, "ch": 64, "steps": 6000}),
]

CONFIGS: dict = {c.name: c for c in _CPU}
CONFIGS.update({c.name + "-gpu": gpu_variant(c) for c in _CPU if isinstance(c, GANConfig)})


def get_config(name: str, **overrides):
    """A copy of the named config with ``overrides`` applied, validated; unknown names list the known ones."""
    if name not in CONFIGS:
        raise KeyError(f"unknown config {name!r}; known configs: {', '.join(sorted(CONFIGS))}")
    base = CONFIGS[name]
    known = {f.name for f in dataclasses.fields(base)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"config {name!r} has no field(s) {sorted(unknown)}; fields: {sorted(known)}")
    return dataclasses.replace(base, **overrides).validate()


# ------------------------------------------------------------------------------------------------------------------
# CLIP and unCLIP in miniature (condgan_lib.clip, condgan_lib.unclip): the chapter "CLIP and DALL-E 2's real design".
# The three models are trained in this order; the prior and the decoder read the shipped CLIP named by ``clip``.

@dataclass
class CLIPConfig:
    """A small CLIP trained on captioned shapes with the symmetric contrastive loss and a learned temperature."""
    name: str
    embed_dim: int = 64               # the shared embedding space
    ch: int = 16                      # base width of the image encoder
    text_dim: int = 64                # width of the text encoder
    init_temperature: float = 0.07    # CLIP's initial tau
    train_size: int = 20000           # captioned images drawn once from the train split
    batch_size: int = 128
    steps: int = 1500
    lr: float = 1e-3
    weight_decay: float = 0.01
    amp: str = "none"                 # kept for the command's --amp; these runs are float32
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500

    def validate(self) -> "CLIPConfig":
        _check_positive(self, "embed_dim", "ch", "text_dim", "init_temperature", "train_size", "batch_size", "steps",
                        "lr", "log_every", "ckpt_every")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class PriorConfig:
    """unCLIP's diffusion prior in miniature: CLIP text embedding -> CLIP image embedding."""
    name: str
    clip: str = "shapes-clip"         # the shipped CLIP whose embeddings it maps
    hidden: int = 256
    depth: int = 3
    timesteps: int = 100
    train_size: int = 20000
    batch_size: int = 256
    steps: int = 3000
    lr: float = 1e-3
    amp: str = "none"
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 1000

    def validate(self) -> "PriorConfig":
        _check_positive(self, "hidden", "depth", "timesteps", "train_size", "batch_size", "steps", "lr", "log_every",
                        "ckpt_every")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class DecoderConfig:
    """The decoder as a conditional GAN on CLIP image embeddings (LAFITE's idea): hinge loss, projection D, EMA."""
    name: str
    clip: str = "shapes-clip"
    prior: str = "shapes-prior"       # used to measure the whole chain after training
    z_dim: int = 32
    ch: int = 16
    embed_noise: float = 0.1          # LAFITE's perturbation of the image embeddings (0 disables it)
    clip_weight: float = 0.0          # LAFITE's contrastive term on generated images (0 disables it; see the chapter)
    train_size: int = 20000
    batch_size: int = 64
    steps: int = 2500
    lr_g: float = 1e-3                # G learns 5x faster than D, as in the book's other GANs
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.9)
    ema_decay: float = 0.999
    amp: str = "none"
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500

    def validate(self) -> "DecoderConfig":
        _check_positive(self, "z_dim", "ch", "train_size", "batch_size", "steps", "lr_g", "lr_d", "log_every",
                        "ckpt_every")
        if self.embed_noise < 0 or self.clip_weight < 0 or not 0 <= self.ema_decay < 1:
            raise ValueError(f"config {self.name!r}: embed_noise and clip_weight must be >= 0 and ema_decay in [0, 1)")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_positive(cfg, *fields: str) -> None:
    """A ValueError naming the first of ``fields`` that is not positive, or an ``amp`` other than "none"."""
    for f in fields:
        if not getattr(cfg, f) > 0:
            raise ValueError(f"config {cfg.name!r}: {f} must be positive, not {getattr(cfg, f)}")
    if getattr(cfg, "amp", "none") != "none":  # configs without the field run in float32 anyway
        raise ValueError(f"config {cfg.name!r}: amp must be 'none' for this model, not {cfg.amp!r}")


_UNCLIP = [CLIPConfig("shapes-clip"), PriorConfig("shapes-prior"), DecoderConfig("shapes-decoder")]
CONFIGS.update({c.name: c for c in _UNCLIP})


@dataclass
class DiffusionDecoderConfig:
    """The stretch: a tiny diffusion decoder on the same CLIP image embeddings, to compare with the GAN decoder."""
    name: str
    clip: str = "shapes-clip"
    prior: str = "shapes-prior"
    ch: int = 16
    timesteps: int = 100
    cond_drop: float = 0.1            # share of embeddings zeroed in training (for classifier-free guidance)
    train_size: int = 20000
    batch_size: int = 64
    steps: int = 3000
    lr: float = 1e-3
    ema_decay: float = 0.999
    eval_samples: int = 500
    amp: str = "none"
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500

    def validate(self) -> "DiffusionDecoderConfig":
        _check_positive(self, "ch", "timesteps", "train_size", "batch_size", "steps", "lr", "eval_samples",
                        "log_every", "ckpt_every")
        if not 0 <= self.cond_drop < 1 or not 0 <= self.ema_decay < 1:
            raise ValueError(f"config {self.name!r}: cond_drop and ema_decay must be in [0, 1)")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_UNCLIP.append(DiffusionDecoderConfig("shapes-diffusion-decoder"))
CONFIGS[_UNCLIP[-1].name] = _UNCLIP[-1]


def unclip_gpu_variant(cfg):
    """The GPU-sized chain: 4x batch, 3x steps, 5x data, a wider decoder; each stage reads the GPU-sized stage before."""
    chain = {"clip": "shapes-clip-gpu"} if hasattr(cfg, "clip") else {}
    if isinstance(cfg, (DecoderConfig, DiffusionDecoderConfig)):
        chain.update(prior="shapes-prior-gpu", ch=32)
    return dataclasses.replace(cfg, name=cfg.name + "-gpu", batch_size=4 * cfg.batch_size, steps=3 * cfg.steps,
                               train_size=100000, **chain)


# the shipped checkpoints use the CPU recipes above
CONFIGS.update({c.name + "-gpu": unclip_gpu_variant(c) for c in _UNCLIP})
# ------------------------------------------------------------------------------------------- end of CLIP and unCLIP


# ----------------------------------------------------------------------------- text to image (chapter text_to_image)

@dataclass
class ProbeConfig:
    """The attribute probe that reads shape, colour, size and position from scene images (``condgan_lib.probe``)."""
    name: str
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    ch: int = 32
    two_objects: float = 0.5          # share of two-object scenes in its training batches
    eval_samples: int = 1000
    seed: int = 0

    def validate(self) -> "ProbeConfig":
        _check_positive(self, "steps", "batch_size", "lr", "ch", "eval_samples")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TextGANConfig:
    """A text-conditional GAN (GAN-INT-CLS with a projection or concatenation discriminator, ``condgan_lib.text2img``)."""
    name: str
    discriminator: str = "projection"   # "projection" (Miyato & Koyama) or "concat" (Reed et al.)
    z_dim: int = 32
    ch: int = 24
    text_pretrain_steps: int = 300      # the text encoder learns to tag each word with its meaning, then is frozen
    batch_size: int = 32
    steps: int = 5000                   # alignment peaks near here at these rates, then falls (measured in the chapter)
    lr_g: float = 1e-3                  # 2e-4 for both, after 10,000 steps, still drew small circles as squares
    lr_d: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.9)
    interpolation_weight: float = 0.5   # GAN-INT: weight of G's loss on interpolated caption embeddings
    two_objects: float = 0.25           # share of two-object scenes in training batches
    ema_decay: float = 0.999
    eval_samples: int = 500
    eval_every: int = 500               # probe-read alignment of the EMA generator (200 captions each) in the history
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500

    def validate(self) -> "TextGANConfig":
        _check_positive(self, "z_dim", "ch", "batch_size", "steps", "lr_g", "lr_d", "eval_samples",
                               "eval_every", "log_every", "ckpt_every")
        if self.discriminator not in ("projection", "concat"):
            raise ValueError(f"config {self.name!r}: discriminator must be 'projection' or 'concat', "
                             f"not {self.discriminator!r}")
        if not 0 <= self.two_objects <= 1 or self.interpolation_weight < 0 or not 0 <= self.ema_decay < 1:
            raise ValueError(f"config {self.name!r}: two_objects and ema_decay must be in [0, 1], "
                             f"interpolation_weight >= 0")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_TEXT2IMG = [ProbeConfig("shapes-probe"),
             TextGANConfig("shapes-text2img", discriminator="projection"),
             TextGANConfig("shapes-text2img-concat", discriminator="concat")]
CONFIGS.update({c.name: c for c in _TEXT2IMG})
# GPU-sized: 4x batch, wider nets, longer (the shipped checkpoints use the CPU recipes above)
CONFIGS.update({c.name + "-gpu": dataclasses.replace(c, name=c.name + "-gpu", batch_size=256, ch=64, steps=3 * c.steps,
                                                      lr_g=2 * c.lr_g, lr_d=2 * c.lr_d)
                for c in _TEXT2IMG if isinstance(c, TextGANConfig)})
# ------------------------------------------------------------------------------------------- end of text to image
