"""The effect's parameters and chain options: the one place their names, units, ranges and defaults live.

Parameters are automatable (attributes of ``SpeakUp``, VST3 parameters, MIDI-CC
targets) and smoothed when they change. Chain options pick the engine and which
stages run; they are fixed for the life of an effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np


@dataclass(frozen=True)
class ParamSpec:
    """One automatable parameter: ``name`` carries its unit."""

    name: str
    default: float
    minimum: float
    maximum: float
    help: str

    def validate(self, value: float) -> float:
        """Return ``value`` (a number, or a number's text) as float, or raise ``ValueError`` naming the parameter.

        Booleans are refused, as presets refuse them: one rule for every entry point.
        """
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, str, np.integer, np.floating)):
            raise ValueError(f"{self.name}: expected a number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{self.name}: expected a number, got {value!r}") from None
        if not self.minimum <= number <= self.maximum:  # also rejects NaN
            raise ValueError(f"{self.name}: {number} is outside [{self.minimum}, {self.maximum}]")
        return number

    def to_normalised(self, value: float) -> float:
        """The plain ``value`` as 0..1 over the range (the one mapping MIDI, presets and the VST3 use)."""
        return (self.validate(value) - self.minimum) / (self.maximum - self.minimum)

    def from_normalised(self, normalised: float) -> float:
        """The plain value at ``normalised`` (0..1) over the range; ``ValueError`` outside 0..1."""
        if isinstance(normalised, bool) or not 0.0 <= float(normalised) <= 1.0:
            raise ValueError(f"{self.name}: normalised value {normalised!r} is outside [0, 1]")
        return self.minimum + (self.maximum - self.minimum) * float(normalised)


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("denoise_amount", 0.8, 0.0, 1.0, "how much noise to remove (0 = none, 1 = all the engine can)"),
    ParamSpec("dereverb_amount", 0.5, 0.0, 1.0, "how much room reverberation to remove"),
    ParamSpec("highpass_hz", 80.0, 20.0, 300.0, "high-pass cutoff against rumble and plosives"),
    ParamSpec("dehum_amount", 1.0, 0.0, 1.0, "mains-hum removal depth (50/60 Hz detected, with harmonics)"),
    ParamSpec("expander_threshold_db", -50.0, -90.0, -10.0, "expander: 10 ms RMS level (dBFS) below which it attenuates"),
    ParamSpec("expander_ratio", 3.0, 1.0, 10.0, "expander: below the threshold the output falls this many dB per dB (1 = off)"),
    ParamSpec("expander_range_db", 30.0, 0.0, 60.0, "expander: the most it attenuates (0 = off)"),
    ParamSpec("low_mid_cut_db", -2.0, -12.0, 0.0, "boxiness cut around 300 Hz"),
    ParamSpec("presence_db", 2.0, -6.0, 12.0, "presence peak around 4 kHz"),
    ParamSpec("air_db", 2.0, -6.0, 12.0, "air shelf above 10 kHz"),
    ParamSpec("leveler_amount", 0.7, 0.0, 1.0, "slow gain riding toward target_lufs (0 = off)"),
    ParamSpec("compressor_threshold_db", -24.0, -60.0, 0.0, "compressor threshold"),
    ParamSpec("compressor_ratio", 3.0, 1.0, 20.0, "compressor ratio (1 = off)"),
    ParamSpec("limiter_ceiling_dbtp", -1.0, -20.0, 0.0, "true-peak ceiling of the output limiter"),
    ParamSpec("target_lufs", -16.0, -40.0, -5.0, "integrated loudness target (leveler and bounce normalisation)"),
    ParamSpec("output_gain_db", 0.0, -24.0, 24.0, "gain after the chain, before the limiter"),
    ParamSpec("mix", 1.0, 0.0, 1.0, "wet/dry mix (dry is delayed to stay aligned)"),
)

PARAM_SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMS}

ENGINES = ("classic", "neural")


@dataclass(frozen=True)
class ChainOptions:
    """Which engine enhances and which stages run; fixed for the life of an effect."""

    engine: str = field(default="classic", metadata={"help": "enhancer: 'classic' (spectral DSP) or 'neural' (trained model)"})
    highpass: bool = field(default=True, metadata={"help": "run the high-pass filter"})
    dehum: bool = field(default=True, metadata={"help": "run the de-hum filter"})
    expander: bool = field(default=False, metadata={"help": "run the downward expander (noise gate) after de-noising"})
    eq: bool = field(default=True, metadata={"help": "run the EQ (low-mid cut, presence, air)"})
    leveler: bool = field(default=True, metadata={"help": "run the leveler"})
    compressor: bool = field(default=True, metadata={"help": "run the compressor"})
    limiter: bool = field(default=True, metadata={"help": "run the true-peak limiter"})
    loudness: bool = field(default=True, metadata={"help": "bounce: normalise integrated loudness to target_lufs"})
    bandwidth_extension: bool = field(default=False, metadata={"help": "restore the 8-24 kHz band of band-limited speech (trained model)"})

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine: expected one of {ENGINES}, got {self.engine!r}")
        for f in fields(self):
            if f.name != "engine" and not isinstance(getattr(self, f.name), bool):
                raise ValueError(f"{f.name}: expected true or false, got {getattr(self, f.name)!r}")


def default_params() -> dict[str, float]:
    """Every parameter at its default."""
    return {spec.name: spec.default for spec in PARAMS}
