"""Device names: checked without importing torch, resolved against the machine with it."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def check_device(device: object) -> str:
    """``device`` if it is ``'auto'``, ``'cpu'``, ``'cuda'`` or ``'cuda:N'`` (None means ``'auto'``); else ``ValueError``."""
    name = "auto" if device is None else device
    if not isinstance(name, str) or not _DEVICE_PATTERN.match(name):
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return name


def resolve_device(device: object) -> torch.device:
    """``"auto"`` (or None): CUDA when available, else the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as asked.

    ``ValueError`` names an unknown device or one this machine does not have.
    """
    import torch

    name = check_device(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(name)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: CUDA is not available on this machine (use 'cpu' or 'auto')")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return resolved


def thread_count(text: str) -> int:
    """The ``--threads`` option of the commands (an ``argparse`` type): a whole number >= 1."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return count
