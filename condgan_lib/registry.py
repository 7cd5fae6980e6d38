"""Which code trains, rebuilds and re-measures each kind of model: the model families.

Serves the commands (``train``, ``evaluate``) and ``hub``. Each chapter module ends by registering its families,
``register(Family(...))``: a name, the chapter, its config class, its trainer, the classes of the models it ships and
how to measure a shipped one again. This module imports no family. The modules that hold families are named in
``FAMILY_MODULES`` and imported on first use (``importlib``), so that ``import condgan_lib`` or loading one shipped
model does not pull in every chapter's code, and no import cycle can form through the registry.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

# every family and the module that registers it, in the order of the chapters
FAMILY_MODULES = {"gan": "condgan_lib.gan", "classifier": "condgan_lib.classifier", "diffusion": "condgan_lib.diffusion",
                  "probe": "condgan_lib.probe", "text-gan": "condgan_lib.text2img", "clip": "condgan_lib.clip",
                  "prior": "condgan_lib.unclip", "decoder": "condgan_lib.unclip", "diffusion-decoder": "condgan_lib.unclip"}


@dataclass(frozen=True)
class Family:
    """One kind of model the training command can make.

    ``trainer(cfg, ctx) -> engine.TrainResult``; ``remeasure(name, entry, load) -> dict`` measures a shipped model
    again as its manifest entry records it (``load`` is ``hub.load_pretrained``); ``vocabulary()`` is the word list
    a text model was built with, stored in its checkpoint and checked on load.
    """
    name: str
    chapter: str
    config_class: type
    trainer: Callable
    model_classes: tuple[type, ...]
    remeasure: Callable | None = None
    tolerances: dict | None = None         # how far a re-measured metric may move (``evaluate --check``)
    resumable: bool = True                 # False: a short loop without checkpoints (``--resume`` is refused)
    distributed: bool = False              # True: runs data-parallel under ``torchrun``
    vocabulary: Callable[[], list[str]] | None = None
    generator: bool = True                 # False for judges (classifiers, the probe): not listed by ``evaluate``


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family (called by the module that defines it, at import)."""
    _FAMILIES[family.name] = family
    return family


def families() -> dict[str, Family]:
    """Every family, importing the modules that define them on first use."""
    for module in dict.fromkeys(FAMILY_MODULES.values()):
        importlib.import_module(module)
    return dict(_FAMILIES)


def family_named(name: str) -> Family:
    """The family called ``name`` (importing only the module that defines it)."""
    if name not in FAMILY_MODULES:
        raise KeyError(f"unknown model family {name!r}; known families: {', '.join(FAMILY_MODULES)}")
    importlib.import_module(FAMILY_MODULES[name])
    return _FAMILIES[name]


def family_for_config(cfg) -> Family:
    """The family whose config class ``cfg`` is an instance of."""
    for family in families().values():
        if type(cfg) is family.config_class:
            return family
    raise KeyError(f"no model family trains a {type(cfg).__name__}")


def family_of_kind(kind: str) -> Family:
    """The family that ships models of class name ``kind`` (as recorded in checkpoints written before families)."""
    for family in families().values():
        if any(cls.__name__ == kind for cls in family.model_classes):
            return family
    raise KeyError(f"no model family ships a {kind!r}")


def model_class(family: Family, kind: str) -> type:
    """The class called ``kind`` among ``family``'s model classes."""
    for cls in family.model_classes:
        if cls.__name__ == kind:
            return cls
    raise KeyError(f"family {family.name!r} has no model class {kind!r}; it ships "
                   f"{', '.join(c.__name__ for c in family.model_classes)}")
