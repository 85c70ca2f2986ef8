"""Benchmark fixtures: ``dfn3_reference``, the speed reference of ``reference.py``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from reference import Reference, measure_dfn3


@pytest.fixture(scope="session")
def dfn3_reference() -> Callable[..., Reference]:
    """``get(sample_rate=48000, channels=2) -> Reference``: DFN3 measured on that material once per session."""
    measured: dict[tuple[int, int], Reference] = {}

    def get(sample_rate: int = 48_000, channels: int = 2) -> Reference:
        key = (sample_rate, channels)
        if key not in measured:
            measured[key] = reference = measure_dfn3(sample_rate, channels)
            rounds = ", ".join(f"{rtf:.4f}" for rtf in reference.round_rtfs)
            print(f"\nreference DFN3, {sample_rate} Hz, {channels} ch: RTF {reference.rtf:.4f} (median of {rounds})")
        return measured[key]

    return get
