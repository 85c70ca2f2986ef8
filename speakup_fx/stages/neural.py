"""A hosted model as a streaming stage: the stage holds a stream of a ``ModelHost``, never a model of its own."""

from __future__ import annotations

import numpy as np

from speakup_fx.runtime.host import ModelHost, ModelStream
from speakup_fx.stages.base import Stage


class ModelStage(Stage):
    """Runs one output of a hosted model of ``kind`` (wet only; the chain mixes it with the dry signal).

    Rates, hop and latency come from the weights file's header, so building the stage loads
    nothing; ``prepare()`` (or the first block) opens the stream, which loads the model once per
    process and allocates the stream's state on the host's device.
    """

    def __init__(self, channels: int, host: ModelHost, kind: str, output: str, weights: str | None = None) -> None:
        super().__init__(channels)
        self._host, self._kind, self._weights = host, kind, weights
        self.spec = host.describe(kind, weights)
        if output not in self.spec.output_names:
            raise ValueError(f"{kind} model has outputs {self.spec.output_names}, not {output!r}")
        self._output_index = self.spec.output_names.index(output)
        self.input_sample_rate = self.spec.input_sample_rate
        self.output_sample_rate = self.spec.output_sample_rate
        self._stream: ModelStream | None = None

    @property
    def latency_samples(self) -> int:
        return self.spec.latency_samples

    def prepare(self) -> None:
        """Open the stream now (loads the model if this process has not yet)."""
        if self._stream is None:
            self._stream = self._host.stream(self._kind, self.channels, self._weights)

    def reset(self) -> None:
        if self._stream is not None:
            self._stream.reset()

    def process(self, block: np.ndarray) -> np.ndarray:
        self.prepare()
        return self._stream.process(np.ascontiguousarray(block, dtype=np.float32))[self._output_index]
