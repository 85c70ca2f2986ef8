"""The streaming-stage contract shared by every part of the engine.

A stage turns fixed-size blocks of float32 audio shaped ``(channels, frames)``
into blocks at its output rate. The engine calls ``process`` with a whole
number ``k >= 1`` of hops (``k * hop_frames(input_sample_rate)`` frames), so a
stage may keep hop-based state (STFT overlap, look-ahead) without re-blocking,
and must return exactly ``k * hop_frames(output_sample_rate)`` frames. The
output stream must not depend on ``k`` (block-size invariance, max abs
difference <= 1e-5). Every stage is deterministic and causal up to its declared
``latency_samples`` (counted at its output rate).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from speakup_fx.runtime.batching import Steps, run_batched

ENGINE_SAMPLE_RATE = 48_000
"""Rate of the engine's main section; other internal rates divide it."""

HOP_MS = 10
"""The engine's fixed hop: 480 frames at 48 kHz, 160 at 16 kHz."""


def hop_frames(sample_rate: int) -> int:
    """Frames in one engine hop at ``sample_rate``."""
    frames, rest = divmod(sample_rate * HOP_MS, 1000)
    if rest:
        raise ValueError(f"sample_rate {sample_rate} Hz has no whole-frame {HOP_MS} ms hop")
    return frames


class Stage(ABC):
    """A streaming processor: ``process(block) -> block``, ``reset()``, ``latency_samples``."""

    input_sample_rate: int = ENGINE_SAMPLE_RATE
    output_sample_rate: int = ENGINE_SAMPLE_RATE
    uses: tuple[str, ...] = ()
    """The parameters (``speakup_fx.params``) this stage acts on."""

    def __init__(self, channels: int) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        self.channels = channels

    @property
    def latency_samples(self) -> int:
        """Delay this stage adds, in frames at ``output_sample_rate``."""
        return 0

    @abstractmethod
    def process(self, block: np.ndarray) -> np.ndarray:
        """Process ``k`` whole hops ``(channels, k * hop_frames(input_sample_rate))``; never mutates ``block``."""

    def steps(self, block: np.ndarray) -> Steps[np.ndarray]:
        """``process(block)`` with its model calls handed to the caller (``speakup_fx.runtime.batching``).

        A stage that runs a hosted model yields its calls here and makes ``process`` run them alone;
        every other stage just processes.
        """
        yield from ()
        return self.process(block)

    def prepare(self) -> None:
        """Allocate whatever the first block would (load a model, open a stream); stages with nothing to do ignore this."""

    @abstractmethod
    def reset(self) -> None:
        """Forget all streaming state, as if newly constructed."""

    def set_params(self, params: dict) -> None:
        """Take new parameter values (a subset of the effect's); applied smoothly from the next block.

        Stages without parameters ignore this.
        """


class HostedStage(Stage):
    """A stage that calls hosted models: its work is in ``steps``; ``process`` runs its calls alone."""

    @abstractmethod
    def steps(self, block: np.ndarray) -> Steps[np.ndarray]:
        """Process ``k`` whole hops, yielding each model call (see ``Stage.steps``)."""

    def process(self, block: np.ndarray) -> np.ndarray:
        return run_batched([self.steps(block)])[0]
