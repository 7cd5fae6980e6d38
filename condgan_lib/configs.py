"""Training configurations: one plain dataclass per kind of model, every shipped recipe in one table ``CONFIGS``.

Serves every chapter that trains something. ``CONFIGS["mnist-projection"]`` is the CPU recipe that produced the
shipped checkpoint; ``CONFIGS["mnist-projection-gpu"]`` is the same model sized for a GPU run (``BaseConfig.gpu``).
``get_config(name, **overrides)`` returns a validated copy. Every config class shares ``BaseConfig``: one
``to_dict``, one validation (positive fields and the class's own checks), one rule for what a resumed run may change
(``RESUMABLE``) and one way to derive the GPU-sized variant.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

MODELS = ("mlp", "dcgan", "sngan", "concat", "acgan", "projection")
DATASETS = ("mnist", "fashion-mnist")
AMP = ("none", "bf16", "fp16")
LR_SCALING = ("none", "sqrt", "linear")


@dataclass
class BaseConfig:
    """What every config has: a name, a seed and a number of steps, and the rules shared by all of them."""
    name: str

    # fields that must be > 0 (checked by ``validate``)
    POSITIVE: ClassVar[tuple[str, ...]] = ()
    # fields a resumed run may change: how long it runs, how often it logs, evaluates and saves, and the rates and
    # precision (the advice after a non-finite loss is to lower them and resume); anything else is another run
    RESUMABLE: ClassVar[tuple[str, ...]] = ("steps", "log_every", "ckpt_every", "eval_every", "eval_samples",
                                            "compile", "export_raw_generator", "lr", "lr_g", "lr_d", "amp")

    def to_dict(self) -> dict:
        """The config as plain JSON-ready values (tuples become lists, as they do in the manifest)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def field_defaults(cls) -> dict:
        """Every field's default, in ``to_dict`` form: what a record written before the field existed stands for."""
        return {f.name: list(f.default) if isinstance(f.default, tuple) else f.default
                for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}

    def checks(self) -> list[tuple[bool, str]]:
        """The class's own checks beyond positivity: ``(ok, message)`` pairs."""
        return []

    def validate(self):
        """Return self, or raise ValueError naming the bad field and the values it may take."""
        for field in self.POSITIVE:
            value = getattr(self, field)
            if isinstance(value, bool) or not value > 0:
                raise ValueError(f"config {self.name!r}: {field} must be positive, not {value!r}")
        if hasattr(self, "betas"):
            betas = tuple(self.betas)
            if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
                raise ValueError(f"config {self.name!r}: betas must be two numbers in [0, 1), e.g. 0.5,0.999; "
                                 f"got {self.betas!r}")
        if hasattr(self, "amp") and self.amp not in AMP:
            raise ValueError(f"config {self.name!r}: amp must be one of {AMP}, not {self.amp!r}")
        for ok, message in self.checks():
            if not ok:
                raise ValueError(f"config {self.name!r}: {message}")
        return self

    def resumable_fields(self) -> tuple[str, ...]:
        """The fields of this config that may differ between a checkpoint and the run that resumes it."""
        names = {f.name for f in dataclasses.fields(self)}
        return tuple(f for f in self.RESUMABLE if f in names)

    def gpu(self):
        """The GPU-sized variant of this recipe, named ``NAME-gpu``, or None when there is none."""
        return None


@dataclass
class GANConfig(BaseConfig):
    """Everything that defines one GAN training run (chapters "From a broken snippet to DCGAN" and
    "Class-conditional GANs")."""
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
    sn_discriminator: bool = False    # DCGAN D: spectral norm instead of batch norm (Miyato et al., 2018)
    acgan_classify_fakes: bool = False  # AC-GAN: D's class loss also on fakes (the paper) or on real images only
    latent_codes: int = 0             # unconditional G: a categorical code of this many values read from z
    info_weight: float = 0.0          # InfoGAN (Chen et al., 2016): weight of D's guess of that code (model "sngan")
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
    lr_scaling: str = "none"          # how the rates follow batch_size / 64: "none", "sqrt" (Adam) or "linear" (SGD)
    lr_warmup_steps: int = 0          # the rates rise linearly from 0 over these first steps
    lr_decay_start: int = 0           # from this step on, both rates fall linearly towards 0 at the last step (0: off)
    export_raw_generator: bool = False  # also ship the non-EMA generator as NAME-raw (to measure what EMA does)

    POSITIVE: ClassVar[tuple[str, ...]] = ("steps", "z_dim", "ch", "lr_g", "lr_d", "log_every", "ckpt_every",
                                           "eval_every", "eval_samples")

    @property
    def conditional(self) -> bool:
        return self.model in ("concat", "acgan", "projection")

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.dataset in DATASETS, f"dataset must be one of {DATASETS}, not {self.dataset!r}"),
            (self.model in MODELS, f"model must be one of {MODELS}, not {self.model!r}"),
            (self.loss in ("bce", "hinge"), f"loss must be 'bce' or 'hinge', not {self.loss!r}"),
            (self.batch_size >= 2, f"batch_size must be >= 2, not {self.batch_size}"),
            (0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), not {self.ema_decay}"),
            (self.lr_scaling in LR_SCALING, f"lr_scaling must be one of {LR_SCALING}, not {self.lr_scaling!r}"),
            (self.lr_warmup_steps >= 0, f"lr_warmup_steps must be >= 0, not {self.lr_warmup_steps}"),
            (self.lr_decay_start >= 0, f"lr_decay_start must be >= 0 (0: no decay), not {self.lr_decay_start}"),
            (self.latent_codes == 0 or (self.model in ("dcgan", "sngan") and 2 <= self.latent_codes <= self.z_dim),
             f"latent_codes must be 0, or 2..z_dim ({self.z_dim}) with model 'dcgan' or 'sngan'; "
             f"not {self.latent_codes} with {self.model!r}"),
            (self.info_weight == 0 or (self.latent_codes and self.model == "sngan" and self.info_weight > 0),
             f"info_weight must be 0, or > 0 with latent_codes and model 'sngan'; not {self.info_weight}"),
        ]

    def lr_factor(self, step: int) -> float:
        """The multiplier of both base rates at 0-based ``step``: the batch rule times the warm-up ramp and the final
        linear decay."""
        ratio = self.batch_size / 64
        factor = {"none": 1.0, "sqrt": ratio ** 0.5, "linear": ratio}[self.lr_scaling]
        if self.lr_warmup_steps:
            factor *= min(1.0, (step + 1) / self.lr_warmup_steps)
        if self.lr_decay_start and step >= self.lr_decay_start:
            factor *= max(0.0, (self.steps - step) / (self.steps - self.lr_decay_start))
        return factor

    def gpu(self) -> "GANConfig":
        """The same recipe at 4x the batch: rates by the square-root rule for Adam (Malladi et al., 2022) after a
        linear warm-up, bf16 and channels_last. Width and length are unchanged (one factor at a time)."""
        return dataclasses.replace(self, name=self.name + "-gpu", batch_size=256, lr_scaling="sqrt",
                                   lr_warmup_steps=500, amp="bf16", channels_last=True, eval_samples=2000)


@dataclass
class ClassifierConfig(BaseConfig):
    """A domain classifier: the independent judge of condition accuracy and the feature space of FID/KID
    (chapter "Measuring a GAN")."""
    dataset: str = "mnist"
    epochs: int = 2
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0

    POSITIVE: ClassVar[tuple[str, ...]] = ("epochs", "batch_size", "lr")

    def checks(self) -> list[tuple[bool, str]]:
        return [(self.dataset in DATASETS, f"dataset must be one of {DATASETS}, not {self.dataset!r}")]


# ---------------------------------------------------------------- chapter "Diffusion, the engine DALL-E 2 really uses"

@dataclass
class DiffusionConfig(BaseConfig):
    """A class-conditional diffusion model with classifier-free guidance (``condgan_lib.diffusion``)."""
    dataset: str = "mnist"
    ch: int = 16                      # U-Net widths ch, 2 ch, 4 ch at 28, 14 and 7 pixels
    timesteps: int = 1000
    schedule: str = "cosine"          # "cosine" (Nichol & Dhariwal) or "linear" (Ho et al.)
    label_drop: float = 0.1           # share of labels replaced by "no label" (for classifier-free guidance)
    batch_size: int = 128
    steps: int = 16000
    lr: float = 2e-3
    warmup: int = 200                 # steps of linear warm-up of the rate
    ema_decay: float = 0.999
    eval_every: int = 500             # condition accuracy of the EMA model in the history
    eval_samples: int = 200
    eval_steps: int = 10              # DDIM steps of that quick evaluation
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500

    POSITIVE: ClassVar[tuple[str, ...]] = ("ch", "timesteps", "batch_size", "steps", "lr", "warmup", "eval_every",
                                           "eval_samples", "eval_steps", "log_every", "ckpt_every")

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.dataset in DATASETS, f"dataset must be one of {DATASETS}, not {self.dataset!r}"),
            (self.schedule in ("cosine", "linear"), f"schedule must be 'cosine' or 'linear', not {self.schedule!r}"),
            (self.batch_size >= 2, f"batch_size must be >= 2, not {self.batch_size}"),
            (self.eval_steps <= self.timesteps, f"eval_steps must be at most timesteps ({self.timesteps})"),
            (0 <= self.label_drop < 1 and 0 <= self.ema_decay < 1, "label_drop and ema_decay must be in [0, 1)"),
        ]

    def gpu(self) -> "DiffusionConfig":
        """4x batch at twice the rate, twice the width, three times the steps."""
        return dataclasses.replace(self, name=self.name + "-gpu", batch_size=4 * self.batch_size, ch=2 * self.ch,
                                   lr=2 * self.lr, steps=3 * self.steps, eval_samples=1000, ckpt_every=2000)


# ---------------------------------------------------------------- chapter "Text to image with a conditional GAN"

@dataclass
class ProbeConfig(BaseConfig):
    """The attribute probe that reads shape, colour, size and position from scene images (``condgan_lib.probe``)."""
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    ch: int = 32
    two_objects: float = 0.5          # share of two-object scenes in its training batches
    eval_samples: int = 1000
    seed: int = 0

    POSITIVE: ClassVar[tuple[str, ...]] = ("steps", "batch_size", "lr", "ch", "eval_samples")


@dataclass
class TextGANConfig(BaseConfig):
    """A text-conditional GAN (GAN-INT-CLS with a projection or concatenation discriminator, ``condgan_lib.text2img``)."""
    discriminator: str = "projection"   # "projection" (Miyato & Koyama) or "concat" (Reed et al.)
    z_dim: int = 32
    ch: int = 32                        # at 24: shape 0.94 on test captions, below the chapter's 0.95 floor
    text_pretrain_steps: int = 300      # the text encoder learns to tag each word with its meaning, then is frozen
    batch_size: int = 32
    steps: int = 6000                   # alignment peaks near here at these rates, then falls (measured in the chapter)
    lr_g: float = 1e-3                  # 2e-4 for both: shape 0.93 after 10,000 steps (the chapter's table)
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

    POSITIVE: ClassVar[tuple[str, ...]] = ("z_dim", "ch", "batch_size", "steps", "lr_g", "lr_d", "eval_samples",
                                           "eval_every", "log_every", "ckpt_every")

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.discriminator in ("projection", "concat"),
             f"discriminator must be 'projection' or 'concat', not {self.discriminator!r}"),
            (0 <= self.two_objects <= 1 and self.interpolation_weight >= 0 and 0 <= self.ema_decay < 1,
             "two_objects and ema_decay must be in [0, 1], interpolation_weight >= 0"),
        ]

    def gpu(self) -> "TextGANConfig":
        """4x batch, wider nets, longer."""
        return dataclasses.replace(self, name=self.name + "-gpu", batch_size=256, ch=64, steps=3 * self.steps,
                                   lr_g=2 * self.lr_g, lr_d=2 * self.lr_d)


# ---------------------------------------------------------------- chapter "CLIP and DALL-E 2's real design"
# The models are trained in this order; the prior and the decoders read the shipped CLIP named by ``clip``.

class _UnCLIPStage:
    """The GPU-sized unCLIP chain: 4x batch, 3x steps, 5x data; each stage reads the GPU-sized stage before it."""

    def gpu(self):
        chain = {"clip": "shapes-clip-gpu"} if hasattr(self, "clip") else {}
        if hasattr(self, "prior"):
            chain.update(prior="shapes-prior-gpu", ch=32)
        return dataclasses.replace(self, name=self.name + "-gpu", batch_size=4 * self.batch_size,
                                   steps=3 * self.steps, train_size=100000, **chain)


@dataclass
class CLIPConfig(_UnCLIPStage, BaseConfig):
    """A small CLIP trained on captioned shapes with the symmetric contrastive loss and a learned temperature."""
    embed_dim: int = 64               # the shared embedding space
    ch: int = 16                      # base width of the image encoder
    text_dim: int = 64                # width of the text encoder
    init_temperature: float = 0.07    # CLIP's initial tau
    train_size: int = 20000           # captioned images drawn once from the train split
    batch_size: int = 128
    steps: int = 1500
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500

    POSITIVE: ClassVar[tuple[str, ...]] = ("embed_dim", "ch", "text_dim", "init_temperature", "train_size",
                                           "batch_size", "steps", "lr", "log_every", "ckpt_every")


@dataclass
class PriorConfig(_UnCLIPStage, BaseConfig):
    """unCLIP's diffusion prior in miniature: CLIP text embedding -> CLIP image embedding."""
    clip: str = "shapes-clip"         # the shipped CLIP whose embeddings it maps
    hidden: int = 256
    depth: int = 3
    timesteps: int = 100
    train_size: int = 20000
    batch_size: int = 256
    steps: int = 3000
    lr: float = 1e-3
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 1000

    POSITIVE: ClassVar[tuple[str, ...]] = ("hidden", "depth", "timesteps", "train_size", "batch_size", "steps", "lr",
                                           "log_every", "ckpt_every")


@dataclass
class DecoderConfig(_UnCLIPStage, BaseConfig):
    """The decoder as a conditional GAN on CLIP image embeddings (LAFITE's idea): hinge loss, projection D, EMA."""
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
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500

    POSITIVE: ClassVar[tuple[str, ...]] = ("z_dim", "ch", "train_size", "batch_size", "steps", "lr_g", "lr_d",
                                           "log_every", "ckpt_every")

    def checks(self) -> list[tuple[bool, str]]:
        return [(self.embed_noise >= 0 and self.clip_weight >= 0 and 0 <= self.ema_decay < 1,
                 "embed_noise and clip_weight must be >= 0 and ema_decay in [0, 1)")]


@dataclass
class DiffusionDecoderConfig(_UnCLIPStage, BaseConfig):
    """A tiny diffusion decoder on the same CLIP image embeddings, to compare with the GAN decoder."""
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
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500

    POSITIVE: ClassVar[tuple[str, ...]] = ("ch", "timesteps", "train_size", "batch_size", "steps", "lr",
                                           "eval_samples", "log_every", "ckpt_every")

    def checks(self) -> list[tuple[bool, str]]:
        return [(0 <= self.cond_drop < 1 and 0 <= self.ema_decay < 1, "cond_drop and ema_decay must be in [0, 1)")]


# ------------------------------------------------------------------------------------------ every shipped recipe

_CONDITIONAL = dict(lr_g=3e-3, lr_d=3e-3, ema_decay=0.995, steps=10000)
_SHOWCASE = dict(_CONDITIONAL, loss="hinge", steps=40000)

RECIPES: list[BaseConfig] = [
    # the judges are trained until they are clearly more accurate than the targets they check (0.99 and 0.90)
    ClassifierConfig("mnist-classifier", dataset="mnist", epochs=6),
    ClassifierConfig("fashion-classifier", dataset="fashion-mnist", epochs=12),
    # DCGAN's own recipe: Adam(2e-4, betas 0.5/0.999) for both networks, batch norm in G and D; the chapter "From a
    # broken snippet to DCGAN" builds and trains it (not shipped)
    GANConfig("mnist-mlp", dataset="mnist", model="mlp", loss="bce", lr_g=2e-4, betas=(0.5, 0.999), steps=3000),
    GANConfig("mnist-dcgan-paper", dataset="mnist", model="dcgan", loss="bce", lr_g=2e-4, betas=(0.5, 0.999),
              steps=3000),
    # the shipped DCGANs: the same generator; a spectrally normalised discriminator with a third convolution and
    # global sum pooling (model "sngan": the projection discriminator without its class term) and the hinge loss, at
    # the conditional recipe's rates. scripts/dcgan_ablation.py measured it against DCGAN's own recipe, the
    # conditional recipe with batch norm, spectral norm in DCGAN's two-layer discriminator, and variants of it
    # (condgan_lib/artifacts/dcgan/ablation.json). On MNIST the generator also reads a ten-valued code from its latent
    # (models.latent_code) that D learns to guess (InfoGAN): 0.877 judged with p >= 0.9 at 20,000 steps against
    # 0.821 without. On Fashion-MNIST the code lowers FID at 20,000 steps (21.2 against 25.0) but not the judged share
    # (0.59), and 40,000 steps without it do better (20.6, 0.60; artifacts/dcgan/ablation_fashion-mnist.json)
    GANConfig("mnist-dcgan", dataset="mnist", model="sngan",
              **dict(_SHOWCASE, steps=20000, latent_codes=10, info_weight=1.0)),
    GANConfig("fashion-dcgan", dataset="fashion-mnist", model="sngan", **_SHOWCASE),
    # the conditional recipe, shared by all four: the same G, Adam(0, 0.9), batch 64, 10,000 steps, and D as fast
    # as G at a high rate (3e-3 for both), with a short generator average (EMA 0.995). D and loss follow each paper;
    # the projection D leaves its class table free of spectral norm. Both choices make the label learnt sooner: the
    # chapter "Class-conditional GANs" measures them against the earlier recipes (lr 1e-3 or 2e-4 for D, EMA 0.999).
    GANConfig("mnist-concat", dataset="mnist", model="concat", loss="bce", **_CONDITIONAL),
    GANConfig("mnist-acgan", dataset="mnist", model="acgan", loss="bce", **_CONDITIONAL),
    GANConfig("mnist-projection", dataset="mnist", model="projection", loss="hinge", sn_embedding=False,
              export_raw_generator=True, **_CONDITIONAL),
    # Fashion-MNIST's classes differ in texture and detail: at ch 32 condition accuracy stays below 0.90 until step
    # 6,500 (0.8985 on 2,000 samples at 10,000), twice the width passes 0.90 at step 3,000 and needs fewer steps
    # (measured in the chapter "Class-conditional GANs", artifacts/ablation/fashion_ch32.json and fashion_ch64.json)
    GANConfig("fashion-projection", dataset="fashion-mnist", model="projection", loss="hinge", sn_embedding=False,
              **{**_CONDITIONAL, "ch": 64, "steps": 6000}),
    ProbeConfig("shapes-probe"),
    TextGANConfig("shapes-text2img", discriminator="projection"),
    TextGANConfig("shapes-text2img-concat", discriminator="concat"),
    CLIPConfig("shapes-clip"),
    PriorConfig("shapes-prior"),
    DecoderConfig("shapes-decoder"),
    DiffusionDecoderConfig("shapes-diffusion-decoder"),
    # the diffusion chapter's model: sized so that 1,000 samples at the default steps take under a minute on 2 cores
    DiffusionConfig("mnist-diffusion"),
]

# the shipped checkpoints use the CPU recipes; the -gpu variants are for a run on a GPU
CONFIGS: dict[str, BaseConfig] = {}
for _recipe in RECIPES:
    CONFIGS[_recipe.name] = _recipe
    if (_variant := _recipe.gpu()) is not None:
        CONFIGS[_variant.name] = _variant
del _recipe, _variant


def get_config(name: str, **overrides) -> BaseConfig:
    """A copy of the named config with ``overrides`` applied, validated; unknown names list the known ones."""
    if name not in CONFIGS:
        raise KeyError(f"unknown config {name!r}; known configs: {', '.join(sorted(CONFIGS))}")
    base = CONFIGS[name]
    known = {f.name for f in dataclasses.fields(base)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"config {name!r} has no field(s) {sorted(unknown)}; fields: {sorted(known - {'name'})}")
    if "betas" in overrides:
        overrides["betas"] = tuple(overrides["betas"])
    return dataclasses.replace(base, **overrides).validate()
