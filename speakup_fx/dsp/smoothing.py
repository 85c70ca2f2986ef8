"""Parameter smoothing at the engine's hop rate, so that a change never steps (no zipper noise).

A smoothed parameter moves once per hop, so its trajectory does not depend on
how many hops a block holds; per-sample ramps interpolate linearly between the
values at hop boundaries.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from speakup_fx.dsp.envelope import one_pole_coefficient
from speakup_fx.params import PARAM_SPECS


def hop_ramp(boundaries: np.ndarray, hop_frames: int) -> np.ndarray:
    """Per-sample linear ramp through ``boundaries`` (values at ``hops + 1`` hop boundaries).

    Sample ``i`` of hop ``j`` gets ``b[j] + (b[j+1] - b[j]) * (i + 1) / hop_frames``, so each hop ends
    exactly on the next boundary value. Returns ``(hops * hop_frames,)`` float64.
    """
    start = boundaries[:-1, None]
    step = np.diff(boundaries)[:, None]
    fraction = np.arange(1, hop_frames + 1) / hop_frames
    return (start + step * fraction).ravel()


class SmoothedParam:
    """One effect parameter gliding toward its latest value with a one-pole, one step per hop.

    The starting value is ``params[name]`` (the parameter's default when absent), validated
    against its range in ``speakup_fx.params``; ``hop_s`` is the duration of one step.
    """

    def __init__(self, name: str, params: Mapping[str, float], time_constant_s: float, hop_s: float) -> None:
        self.spec = PARAM_SPECS[name]
        self.target = self.spec.validate(params.get(name, self.spec.default))
        self.value = self.target
        self._coefficient = one_pole_coefficient(time_constant_s, 1 / hop_s)
        self._tolerance = 1e-6 * (self.spec.maximum - self.spec.minimum)

    @property
    def settled(self) -> bool:
        """True when the value has reached its target."""
        return self.value == self.target

    def update(self, params: Mapping[str, float]) -> None:
        """Take a new target from ``params`` if it names this parameter (``ValueError`` when out of range)."""
        if self.spec.name in params:
            self.target = self.spec.validate(params[self.spec.name])

    def advance(self) -> float:
        """Move one hop toward the target; returns the value at the end of that hop."""
        if not self.settled:
            value = self.target + (self.value - self.target) * self._coefficient
            self.value = self.target if abs(value - self.target) <= self._tolerance else value
        return self.value

    def hop_values(self, hops: int) -> np.ndarray:
        """Values at the ``hops + 1`` boundaries of the next ``hops`` hops (advances the state)."""
        values = np.empty(hops + 1)
        values[0] = self.value
        for j in range(hops):
            values[j + 1] = self.advance()
        return values

    def reset(self) -> None:
        """Jump to the target, as a freshly constructed parameter would start."""
        self.value = self.target
