"""Chapters "From a broken snippet to DCGAN" and "Class-conditional GANs": generators and discriminators for 28x28 images: the MLP GAN, DCGAN, and three class-conditional discriminators.

- ``MLPGenerator`` / ``MLPDiscriminator``: the fully connected GAN of Goodfellow et al. (2014).
- ``Generator`` / ``DCGANDiscriminator``: DCGAN (Radford et al., 2016): transposed convolutions, batch norm in G,
  strided convolutions and LeakyReLU in D, no pooling, tanh output.
- ``SNGANDiscriminator``: the unconditional discriminator of the shipped DCGANs, spectrally normalised (Miyato et al.,
  2018): three convolutions and global sum pooling; the projection discriminator is this network plus a class term.
- ``ConcatDiscriminator``: the label is concatenated to the input as one-hot planes (Mirza & Osindero, 2014).
- ``ACGANDiscriminator``: a real/fake head plus an auxiliary class head (Odena et al., 2017).
- ``ProjectionDiscriminator``: ``psi(phi(x)) + <embed(y), phi(x)>`` with spectral norm (Miyato & Koyama, 2018).

One ``Generator`` serves every variant: with ``n_classes > 0`` it uses class-conditional batch norm, so that the
three conditional discriminators are compared with the same generator. With ``n_codes > 0`` it stays unconditional
but reads a categorical code from its own latent (InfoGAN's code, Chen et al., 2016): see ``latent_code``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .layers import sample_latents


def check_labels(labels, n_classes: int) -> torch.Tensor:
    """Labels as a LongTensor on the CPU, or a ValueError naming the labels outside ``0..n_classes-1``."""
    labels = torch.as_tensor(labels)
    if labels.numel() == 0 and labels.dim() == 1:
        return labels.long()  # no labels: an empty batch
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.dim() != 1:
        raise ValueError(f"labels must be a 1-D integer tensor, got dtype {labels.dtype} and shape {tuple(labels.shape)}")
    bad = labels[(labels < 0) | (labels >= n_classes)]
    if len(bad):
        raise ValueError(f"labels must be in 0..{n_classes - 1}; got {sorted(set(bad.tolist()))}")
    return labels.long()


def check_count(n) -> int:
    """A positive sample count, or a ValueError (unconditional generators take a count, not labels)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"this generator is unconditional: pass a positive count, not {n!r}")
    return n


class MLPGenerator(nn.Module):
    """A fully connected generator: ``z`` -> 784 pixels in [-1, 1], reshaped to ``[N, 1, 28, 28]``."""

    def __init__(self, z_dim: int = 64, hidden: int = 256):
        super().__init__()
        self.z_dim, self.n_classes = z_dim, 0
        self.net = nn.Sequential(
            nn.Linear(z_dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 2 * hidden), nn.LeakyReLU(0.2),
            nn.Linear(2 * hidden, 784), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z).view(-1, 1, 28, 28)

    @torch.no_grad()
    def generate(self, n: int, seed: int | None = None) -> torch.Tensor:
        """``n`` images in [0, 1], reproducible for a given ``seed``."""
        device = next(self.parameters()).device
        return (self(sample_latents(check_count(n), self.z_dim, seed, device)) + 1) / 2


class MLPDiscriminator(nn.Module):
    """A fully connected discriminator that returns one logit per image (no sigmoid: the loss applies it)."""

    def __init__(self, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 2 * hidden), nn.LeakyReLU(0.2),
            nn.Linear(2 * hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).squeeze(1)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up per class (de Vries et al., 2017; used by Miyato & Koyama)."""

    def __init__(self, channels: int, n_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(n_classes, channels)
        self.bias = nn.Embedding(n_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]


def latent_code(z: torch.Tensor, n_codes: int) -> torch.Tensor:
    """The categorical code carried by latents ``z``: the index of the largest of their first ``n_codes`` values.

    For standard normal ``z`` the code is uniform over ``0..n_codes-1``, so an unconditional generator keeps one
    Gaussian input (and everything that samples, truncates or exports it) while its latent space falls into
    ``n_codes`` disjoint regions, one per code.
    """
    return z[:, :n_codes].argmax(1)


def with_code(z: torch.Tensor, code: int, n_codes: int) -> torch.Tensor:
    """``z`` moved into the region of ``code``: in each row the largest of the first ``n_codes`` values swaps places
    with the value at ``code``. The values are only permuted, so Gaussian latents become draws of z given the code."""
    z = z.clone()
    rows = torch.arange(len(z))
    top = latent_code(z, n_codes)
    z[rows, top], z[rows, code] = z[rows, code], z[rows, top]
    return z


class Generator(nn.Module):
    """DCGAN generator for 28x28 images; class-conditional when ``n_classes > 0``.

    ``z`` -> linear -> ``[2ch, 7, 7]`` -> up to ``[ch, 14, 14]`` -> ``[1, 28, 28]``, tanh. A conditional generator
    sees the label only through class-conditional batch norm after each block: the label sets the scale and shift
    of the features, the noise sets their content, so neither can crowd the other out. With ``n_codes > 0`` the
    generator is unconditional and the same batch norm is driven by ``latent_code(z, n_codes)`` instead of a label.
    """

    def __init__(self, z_dim: int = 64, n_classes: int = 0, ch: int = 64, out_channels: int = 1, n_codes: int = 0):
        super().__init__()
        if n_classes and n_codes:
            raise ValueError("a generator takes either class labels (n_classes) or a latent code (n_codes), not both")
        if n_codes > z_dim:
            raise ValueError(f"n_codes ({n_codes}) cannot exceed z_dim ({z_dim}): the code is read from z")
        self.z_dim, self.n_classes, self.n_codes = z_dim, n_classes, n_codes
        n_tables = n_classes or n_codes

        def norm(c: int) -> nn.Module:
            return ConditionalBatchNorm2d(c, n_tables) if n_tables else nn.BatchNorm2d(c)

        self.fc = nn.Linear(z_dim, 2 * ch * 7 * 7, bias=False)
        self.norm1 = norm(2 * ch)
        self.up1 = nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1, bias=False)
        self.norm2 = norm(ch)
        self.up2 = nn.ConvTranspose2d(ch, out_channels, 4, 2, 1)

    def _norm(self, layer: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return torch.relu(layer(x, labels) if self.n_classes or self.n_codes else layer(x))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] from latents ``z`` (and ``labels`` for a conditional generator)."""
        if self.n_codes:
            labels = latent_code(z, self.n_codes)
        h = self.fc(z).view(z.shape[0], -1, 7, 7)
        h = self._norm(self.norm1, h, labels)
        h = self._norm(self.norm2, self.up1(h), labels)
        return torch.tanh(self.up2(h))

    @torch.no_grad()
    def generate(self, labels_or_n, seed: int | None = None, truncation: float | None = None) -> torch.Tensor:
        """Images in [0, 1] of shape ``[N, 1, 28, 28]``.

        Conditional: ``generate(labels: LongTensor, seed)``; unconditional: ``generate(n: int, seed)``.
        """
        device = next(self.parameters()).device
        if self.n_classes:
            if isinstance(labels_or_n, int):
                raise ValueError("this generator is class-conditional: pass a LongTensor of labels, not a count")
            labels = check_labels(labels_or_n, self.n_classes)
            if len(labels) == 0:
                return torch.empty(0, self.up2.out_channels, 28, 28, device=device)
            z = sample_latents(len(labels), self.z_dim, seed, device, truncation)
            out = self(z, labels.to(device))
        else:
            out = self(sample_latents(check_count(labels_or_n), self.z_dim, seed, device, truncation))
        return (out.float() + 1) / 2


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv and linear weights from N(0, 0.02), batch-norm scales from N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def conv_trunk(in_channels: int, ch: int, sn: bool, batch_norm: bool) -> nn.Sequential:
    """Two strided convolutions: ``[in, 28, 28]`` -> ``[2ch, 7, 7]``, LeakyReLU(0.2)."""
    wrap = spectral_norm if sn else (lambda m: m)
    layers = [wrap(nn.Conv2d(in_channels, ch, 4, 2, 1)), nn.LeakyReLU(0.2),
              wrap(nn.Conv2d(ch, 2 * ch, 4, 2, 1)), nn.LeakyReLU(0.2)]
    if batch_norm:  # DCGAN: batch norm in every D layer but the first
        layers.insert(3, nn.BatchNorm2d(2 * ch))
    return nn.Sequential(*layers)


class DCGANDiscriminator(nn.Module):
    """Unconditional DCGAN discriminator: one logit per image."""

    def __init__(self, ch: int = 64, sn: bool = False, batch_norm: bool = True, in_channels: int = 1):
        super().__init__()
        self.trunk = conv_trunk(in_channels, ch, sn, batch_norm)
        self.head = nn.Linear(2 * ch * 7 * 7, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.trunk(x).flatten(1)).squeeze(1)


class SNGANDiscriminator(nn.Module):
    """Unconditional, spectrally normalised discriminator (Miyato et al., 2018): one logit ``psi(phi(x))``.

    ``phi`` is a global sum over a ``[4ch, 4, 4]`` feature map: a third convolution gives every feature a receptive
    field that covers the whole digit, because what a digit is depends on its whole shape. ``ProjectionDiscriminator``
    adds a class term to this network.
    """

    def __init__(self, ch: int = 64, in_channels: int = 1, n_codes: int = 0):
        super().__init__()
        self.trunk = nn.Sequential(conv_trunk(in_channels, ch, sn=True, batch_norm=False),
                                   spectral_norm(nn.Conv2d(2 * ch, 4 * ch, 3, 2, 1)), nn.LeakyReLU(0.2))
        self.head = spectral_norm(nn.Linear(4 * ch, 1))
        # InfoGAN's Q: the same features also guess the generator's latent code (Chen et al., 2016)
        self.code_head = nn.Linear(4 * ch, n_codes) if n_codes else None

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x).sum(dim=(2, 3))  # global sum pooling, as in the paper

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        """One logit per image; with a code head, ``(logit, code logits)``."""
        h = self.phi(x)
        logit = self.head(h).squeeze(1)
        return logit if self.code_head is None else (logit, self.code_head(h))


class ConcatDiscriminator(nn.Module):
    """cGAN discriminator (Mirza & Osindero): the label enters as 10 one-hot planes beside the image."""

    def __init__(self, n_classes: int = 10, ch: int = 64, sn: bool = False, batch_norm: bool = True, in_channels: int = 1):
        super().__init__()
        self.n_classes = n_classes
        self.trunk = conv_trunk(in_channels + n_classes, ch, sn, batch_norm)
        self.head = nn.Linear(2 * ch * 7 * 7, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        planes = nn.functional.one_hot(labels, self.n_classes).to(x.dtype)[:, :, None, None]
        x = torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], dim=1)
        return self.head(self.trunk(x).flatten(1)).squeeze(1)


class ACGANDiscriminator(nn.Module):
    """AC-GAN discriminator (Odena et al.): returns ``(real/fake logit, class logits)``; it never sees the label."""

    def __init__(self, n_classes: int = 10, ch: int = 64, sn: bool = False, batch_norm: bool = True, in_channels: int = 1):
        super().__init__()
        self.trunk = conv_trunk(in_channels, ch, sn, batch_norm)
        self.head = nn.Linear(2 * ch * 7 * 7, 1)
        self.classifier = nn.Linear(2 * ch * 7 * 7, n_classes)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        h = self.trunk(x).flatten(1)
        return self.head(h).squeeze(1), self.classifier(h)


class ProjectionDiscriminator(SNGANDiscriminator):
    """Projection discriminator (Miyato & Koyama): ``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>``, spectrally normalised.

    ``phi`` and ``psi`` (``trunk`` and ``head``) are ``SNGANDiscriminator``'s: three convolutions, whose last features
    each see the whole digit, summed over positions. The label adds one inner product with a learned class direction.
    """

    def __init__(self, n_classes: int = 10, ch: int = 64, in_channels: int = 1, sn_embedding: bool = True):
        super().__init__(ch, in_channels)
        embed = nn.Embedding(n_classes, 4 * ch)
        self.embed = spectral_norm(embed) if sn_embedding else embed

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        phi = self.phi(x)
        return self.head(phi).squeeze(1) + (self.embed(labels) * phi).sum(1)
