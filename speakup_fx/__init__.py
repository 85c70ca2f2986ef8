"""SpeakUp FX: noisy, roomy phone/laptop speech in, studio-sounding speech out.

The public API: ``SpeakUp`` (a pedalboard-compatible effect), ``Board`` (a
chain of them and pedalboard plugins), ``load_preset``, ``bounce`` and
``__version__``. ``load_preset`` and ``bounce`` are imported on first use, so
``import speakup_fx`` stays light.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from speakup_fx.effect import Board, SpeakUp

try:
    __version__ = version("speakup-fx")
except PackageNotFoundError:  # a source tree run without installing it (a lent GPU machine: train/travel.py)
    __version__ = "0+source"

__all__ = ["Board", "SpeakUp", "__version__", "bounce", "load_preset"]

_LAZY = {"load_preset": "speakup_fx.presets", "bounce": "speakup_fx.bounce"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'speakup_fx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
