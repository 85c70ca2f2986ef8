"""A stage's output blended with its own input by an amount parameter, through the one dry/wet mixer."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from speakup_fx.dsp.mix import DryWetMixer
from speakup_fx.params import PARAM_SPECS
from speakup_fx.runtime.batching import Steps
from speakup_fx.stages.base import HostedStage, Stage, hop_frames


class BlendStage(HostedStage):
    """``inner``'s output mixed with its input delayed to match, by ``params[amount_param]`` (glides over one hop)."""

    def __init__(self, inner: Stage, amount_param: str, params: Mapping[str, float]) -> None:
        super().__init__(inner.channels)
        if inner.input_sample_rate != inner.output_sample_rate:
            raise ValueError(f"{type(inner).__name__} changes the rate; it cannot be blended with its input")
        self.inner = inner
        self.input_sample_rate = self.output_sample_rate = inner.output_sample_rate
        self._amount_param = amount_param
        spec = PARAM_SPECS[amount_param]
        self._mixer = DryWetMixer(
            inner.channels, inner.latency_samples, hop_frames(self.output_sample_rate),
            spec.validate(params.get(amount_param, spec.default)),
        )

    @property
    def uses(self) -> tuple[str, ...]:
        return (*self.inner.uses, self._amount_param)

    @property
    def latency_samples(self) -> int:
        return self.inner.latency_samples

    def set_params(self, params: dict) -> None:
        self.inner.set_params(params)
        if self._amount_param in params:
            self._mixer.set_wet_gain(PARAM_SPECS[self._amount_param].validate(params[self._amount_param]))

    def prepare(self) -> None:
        self.inner.prepare()

    def reset(self) -> None:
        self.inner.reset()
        self._mixer.reset()

    def steps(self, block: np.ndarray) -> Steps[np.ndarray]:
        return self._mixer.mix(block, (yield from self.inner.steps(block)))
