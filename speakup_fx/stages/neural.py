"""Hosted models as streaming stages: a stage holds a stream of a ``ModelHost``, never a model of its own."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from speakup_fx.dsp.mix import DryWetMixer
from speakup_fx.params import PARAM_SPECS
from speakup_fx.runtime.host import ModelHost, ModelStream
from speakup_fx.runtime.batching import Steps
from speakup_fx.stages.base import HostedStage, hop_frames


class ModelStage(HostedStage):
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
        self.output_index = self.spec.output_names.index(output)
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

    def all_outputs(self, block: np.ndarray) -> Steps[np.ndarray]:
        """Every output of the model for ``block``: ``(outputs, channels, frames)`` (one model call)."""
        self.prepare()
        return (yield self._stream, np.ascontiguousarray(block, dtype=np.float32))

    def steps(self, block: np.ndarray) -> Steps[np.ndarray]:
        return (yield from self.all_outputs(block))[self.output_index]


class NoiseAndRoomStage(HostedStage):
    """An enhancer with a ``denoised`` (room kept) and a ``dereverberated`` output, mixed with the input.

    ``out = x + denoise_amount * (denoised - x) + dereverb_amount * (dereverberated - denoised)``
    (``x`` delayed to match): noise and room under separate control, each amount gliding over one hop
    in the one dry/wet mixer.
    """

    uses = ("denoise_amount", "dereverb_amount")

    def __init__(self, channels: int, host: ModelHost, kind: str, params: Mapping[str, float], weights: str | None = None) -> None:
        super().__init__(channels)
        self.inner = ModelStage(channels, host, kind, "denoised", weights)
        if "dereverberated" not in self.inner.spec.output_names:
            raise ValueError(f"{kind} model has outputs {self.inner.spec.output_names}, not 'dereverberated'")
        self._room_index = self.inner.spec.output_names.index("dereverberated")
        self.input_sample_rate = self.output_sample_rate = self.inner.output_sample_rate
        hop = hop_frames(self.output_sample_rate)
        amount = {name: PARAM_SPECS[name].validate(params.get(name, PARAM_SPECS[name].default)) for name in self.uses}
        self._noise = DryWetMixer(channels, self.inner.latency_samples, hop, amount["denoise_amount"])
        self._room = DryWetMixer(channels, 0, hop, amount["dereverb_amount"])

    @property
    def latency_samples(self) -> int:
        return self.inner.latency_samples

    def set_params(self, params: Mapping[str, float]) -> None:
        for name, mixer in (("denoise_amount", self._noise), ("dereverb_amount", self._room)):
            if name in params:
                mixer.set_wet_gain(PARAM_SPECS[name].validate(params[name]))

    def prepare(self) -> None:
        self.inner.prepare()

    def reset(self) -> None:
        self.inner.reset()
        self._noise.reset()
        self._room.reset()

    def steps(self, block: np.ndarray) -> Steps[np.ndarray]:
        outputs = yield from self.inner.all_outputs(block)
        denoised, dereverberated = outputs[self.inner.output_index], outputs[self._room_index]
        return self._noise.mix(block, denoised) + self._room.mix(denoised, dereverberated) - denoised
