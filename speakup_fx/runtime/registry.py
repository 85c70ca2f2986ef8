"""The registry of model classes that weights files may name, keyed by (kind, architecture)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from speakup_fx.models.dfnet import DFNet, DFNetConfig
from speakup_fx.models.bwe import BandwidthExtender, BandwidthExtenderConfig
from speakup_fx.models.streaming import StreamingGenerator, StreamingGeneratorConfig

@dataclass(frozen=True)
class Architecture:
    """A registered model class: built as ``model_class(config_class(**config))``."""

    kind: str
    name: str
    model_class: type[nn.Module]
    config_class: type


REGISTRY: dict[tuple[str, str], Architecture] = {}


def register(kind: str, name: str, model_class: type[nn.Module], config_class: type) -> None:
    """Make ``model_class`` loadable as ``kind``/``name``; its config must be a dataclass of JSON-able fields."""
    if not dataclasses.is_dataclass(config_class):
        raise TypeError(f"{config_class.__name__} is not a dataclass")
    REGISTRY[(kind, name)] = Architecture(kind, name, model_class, config_class)


def architecture_of(model: nn.Module) -> Architecture:
    """The registered architecture whose class ``model`` is."""
    for architecture in REGISTRY.values():
        if type(model) is architecture.model_class:
            return architecture
    raise ValueError(f"{type(model).__name__} is not a registered model class")


register("enhancer", "streaming", StreamingGenerator, StreamingGeneratorConfig)
register("enhancer", "dfnet", DFNet, DFNetConfig)
register("bandwidth_extension", "band_replication", BandwidthExtender, BandwidthExtenderConfig)
