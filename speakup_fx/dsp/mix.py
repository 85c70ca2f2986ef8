"""The one dry/wet mixer: the dry signal delayed to line up with the wet one, the wet gain gliding on a change."""

from __future__ import annotations

import numpy as np


class DryWetMixer:
    """``out = dry + wet_gain * (wet - dry)`` on float32 ``(channels, frames)`` blocks.

    ``dry`` is delayed by ``delay_frames`` inside the mixer (the wet path's latency); a new wet gain
    glides linearly over ``ramp_frames``. The output does not depend on how the stream is split
    into calls.
    """

    def __init__(self, channels: int, delay_frames: int, ramp_frames: int, wet_gain: float) -> None:
        if delay_frames < 0 or ramp_frames < 1:
            raise ValueError(f"delay_frames must be >= 0 and ramp_frames >= 1, got {delay_frames}, {ramp_frames}")
        self.channels, self.delay_frames, self.ramp_frames = channels, delay_frames, ramp_frames
        self._initial_gain = float(wet_gain)
        self.reset()

    def reset(self) -> None:
        """Silence in the delay line; the wet gain settles at its latest target."""
        self._delay = np.zeros((self.channels, self.delay_frames), np.float32)
        self._gain = self._target = self._initial_gain
        self._step = 0.0
        self._frames_left = 0

    def set_wet_gain(self, wet_gain: float) -> None:
        """Glide to ``wet_gain`` over the next ``ramp_frames`` frames."""
        self._initial_gain = self._target = float(wet_gain)
        self._step = (self._target - self._gain) / self.ramp_frames
        self._frames_left = self.ramp_frames

    def delay(self, dry: np.ndarray) -> np.ndarray:
        """``dry`` delayed by ``delay_frames`` (the line advances)."""
        line = np.concatenate([self._delay, dry.astype(np.float32, copy=False)], axis=1)
        self._delay = line[:, dry.shape[1] :]
        return line[:, : dry.shape[1]]

    def mix(self, dry: np.ndarray, wet: np.ndarray) -> np.ndarray:
        """Mix the next block; ``dry`` is undelayed input, ``wet`` the wet path's output of the same length."""
        delayed = self.delay(dry)
        gain = self._gains(wet.shape[1])
        if np.isscalar(gain) and gain == 1.0:
            return wet
        return (delayed + gain * (wet - delayed)).astype(np.float32, copy=False)

    def _gains(self, frames: int) -> float | np.ndarray:
        """The wet gain of each of the next ``frames`` frames (a scalar while not gliding)."""
        if self._frames_left == 0:
            return self._gain
        steps = np.arange(1, frames + 1)
        gains = np.where(steps < self._frames_left, self._gain + self._step * steps, self._target)
        used = min(frames, self._frames_left)
        self._frames_left -= used
        self._gain = self._target if self._frames_left == 0 else self._gain + self._step * used
        return gains.astype(np.float32)
