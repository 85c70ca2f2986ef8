"""The streaming engine: host-rate blocks of any size in, the same number of frames out.

Audio travels host rate -> 48 kHz resampler -> input ring -> whole hops
through the chain of stages -> 48 kHz -> host-rate resampler -> output ring.
The output ring starts with just enough silence that every call can return as
many frames as it was given, and the host-rate resampler adds the fraction of
a frame that makes the whole delay a whole number of host frames, so
``latency_samples`` is the exact delay of the wet path. The dry path is delayed
by the same amount, so ``mix`` stays aligned.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np

from speakup_fx._native import RingBuffer
from speakup_fx.dsp.resample import StreamingResampler, check_sample_rate
from speakup_fx.params import PARAM_SPECS, ChainOptions, default_params
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, HOP_MS, Stage, hop_frames

logger = logging.getLogger(__name__)

MAX_BLOCK_MS = 100
"""Host blocks are processed in pieces of at most this length, which bounds the rings."""

MIX_RAMP_MS = 20
"""A change of ``mix`` glides linearly over this long."""


def build_chain(
    channels: int, options: ChainOptions, params: Mapping[str, float], device: str | None = None
) -> list[Stage]:
    """The stages that ``options`` asks for, in processing order; stage modules are imported only when used.

    ``device`` (e.g. ``"cuda"``) is where the neural engine's model runs; ``None`` lets it choose.
    """

    def make(module: str, name: str, *args: object, **kwargs: object) -> Stage:
        return getattr(importlib.import_module(f"speakup_fx.stages.{module}"), name)(channels, *args, **kwargs)

    neural = options.engine == "neural"
    stages: list[Stage] = []
    if neural:
        enhancer = make("neural", "NeuralEnhanceStage", params, **({"device": device} if device else {}))
        stages += [
            make("resample", "ResampleStage", ENGINE_SAMPLE_RATE, enhancer.input_sample_rate),
            enhancer,
            make("resample", "ResampleStage", enhancer.output_sample_rate, ENGINE_SAMPLE_RATE),
        ]
    plan = (
        (options.highpass, "highpass", "HighpassStage"),
        (options.dehum, "dehum", "DehumStage"),
        (not neural, "denoise", "SpectralDenoiseStage"),
        (options.expander, "expander", "ExpanderStage"),  # before the leveler, whose gate then holds through pauses
        (options.eq, "eq", "EqStage"),
        (options.leveler, "leveler", "LevelerStage"),
        (options.compressor, "compressor", "CompressorStage"),
        (True, "gain", "GainStage"),
        (options.limiter, "limiter", "TruePeakLimiterStage"),
    )
    stages += [make(module, name, params) for enabled, module, name in plan if enabled]
    return stages


def chain_latency_frames(stages: Sequence[Stage]) -> int:
    """Summed latency of ``stages`` in 48 kHz frames; raises ``ValueError`` if their rates do not connect."""
    sample_rate = ENGINE_SAMPLE_RATE
    latency_s = Fraction(0)
    for stage in stages:
        if stage.input_sample_rate != sample_rate:
            raise ValueError(
                f"{type(stage).__name__} takes {stage.input_sample_rate} Hz but is fed {sample_rate} Hz "
                "(the engine never resamples silently: add a ResampleStage)"
            )
        sample_rate = stage.output_sample_rate
        latency_s += Fraction(stage.latency_samples, sample_rate)
    if sample_rate != ENGINE_SAMPLE_RATE:
        raise ValueError(f"the chain ends at {sample_rate} Hz, not the engine's {ENGINE_SAMPLE_RATE} Hz")
    frames = latency_s * ENGINE_SAMPLE_RATE
    if frames.denominator != 1:
        raise ValueError(
            f"the chain's latency ({float(latency_s) * 1000:.4f} ms) is not a whole number of 48 kHz frames"
        )
    return int(frames)


def validated_params(params: Mapping[str, float]) -> dict[str, float]:
    """``params`` checked against the specs in ``speakup_fx.params``; ``ValueError`` names a bad key or value."""
    checked = {}
    for name, value in params.items():
        if name not in PARAM_SPECS:
            raise ValueError(f"{name}: not a parameter (known: {', '.join(PARAM_SPECS)})")
        checked[name] = PARAM_SPECS[name].validate(value)
    return checked


class Engine:
    """Runs the chain for ``options`` on float32 ``(channels, frames)`` blocks at ``sample_rate``.

    ``process`` returns exactly as many frames as it is given, delayed by
    ``latency_samples`` (host frames); the output does not depend on how the
    stream is split into calls. ``device`` is passed to the neural stage.
    """

    def __init__(
        self,
        channels: int,
        sample_rate: int,
        options: ChainOptions,
        params: Mapping[str, float],
        device: str | None = None,
    ) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        self.channels = channels
        self.sample_rate = check_sample_rate(sample_rate)
        self.options = options
        self._params = {**default_params(), **validated_params(params)}
        self._stages = tuple(build_chain(channels, options, self._params, device))
        self._chain_latency_frames = chain_latency_frames(self._stages)
        self._hop = hop_frames(ENGINE_SAMPLE_RATE)
        self._to_engine = StreamingResampler(channels, self.sample_rate, ENGINE_SAMPLE_RATE)
        # Delay ticks of the way back that make (chain + resamplers) a whole number of host frames.
        ticks_per_engine_frame = self.sample_rate // math.gcd(self.sample_rate, ENGINE_SAMPLE_RATE)
        ticks_per_host_frame = ENGINE_SAMPLE_RATE // math.gcd(self.sample_rate, ENGINE_SAMPLE_RATE)
        chain_ticks = self._chain_latency_frames * ticks_per_engine_frame
        fraction_ticks = -chain_ticks % ticks_per_host_frame
        self._from_engine = StreamingResampler(channels, ENGINE_SAMPLE_RATE, self.sample_rate, fraction_ticks)
        self._max_block = max(1, self.sample_rate * MAX_BLOCK_MS // 1000)
        self._padding_frames, max_surplus = self._plan_output_padding()
        self.latency_samples = (chain_ticks + fraction_ticks) // ticks_per_host_frame + self._padding_frames
        """Delay of the output behind the input, in host frames (the same for the wet and the dry path)."""
        engine_block = math.ceil(self._max_block * ENGINE_SAMPLE_RATE / self.sample_rate) + 1
        self._input_ring = RingBuffer(channels, self._hop + engine_block)
        self._output_ring = RingBuffer(channels, self._padding_frames + max(0, max_surplus) + self._max_block + 1)
        self._dry_ring = RingBuffer(channels, self.latency_samples + self._max_block)
        self._mix_ramp_frames = max(1, self.sample_rate * MIX_RAMP_MS // 1000)
        self.reset()
        logger.debug(
            "engine %s at %d Hz, %d ch: %s; latency %d frames",
            options.engine, self.sample_rate, channels, [type(s).__name__ for s in self._stages], self.latency_samples,
        )

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The chain, in processing order."""
        return self._stages

    @property
    def params(self) -> dict[str, float]:
        """Current parameter values (a copy)."""
        return dict(self._params)

    def set_params(self, params: Mapping[str, float]) -> None:
        """Take new values for some parameters; they apply smoothly from the next block."""
        changed = validated_params(params)
        self._params.update(changed)
        if "mix" in changed:
            self._mix_target = changed["mix"]
            self._mix_step = (self._mix_target - self._mix) / self._mix_ramp_frames
            self._mix_frames_left = self._mix_ramp_frames
        for stage in self._stages:
            stage.set_params(changed)

    def reset(self) -> None:
        """Forget all streaming state: the next block is the start of a new stream."""
        for stage in self._stages:
            stage.reset()
        self._to_engine.reset()
        self._from_engine.reset()
        for ring, silence in (
            (self._input_ring, 0),
            (self._output_ring, self._padding_frames),
            (self._dry_ring, self.latency_samples),
        ):
            ring.clear()
            self._write(ring, np.zeros((self.channels, silence), np.float32))
        self._mix = self._mix_target = self._params["mix"]
        self._mix_step = 0.0
        self._mix_frames_left = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        """Take float32 ``(channels, frames)``; return the same number of frames, ``latency_samples`` late."""
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"block must be shaped ({self.channels}, frames), got {block.shape}")
        block = np.ascontiguousarray(block, dtype=np.float32)
        out = np.empty_like(block)
        for start in range(0, block.shape[1], self._max_block):
            self._process_piece(block[:, start : start + self._max_block], out[:, start : start + self._max_block])
        return out

    def _process_piece(self, piece: np.ndarray, out: np.ndarray) -> None:
        self._write(self._input_ring, self._to_engine.process(piece))
        hops = self._input_ring.available() // self._hop
        if hops:
            audio = self._input_ring.read(hops * self._hop)
            for stage in self._stages:
                audio = stage.process(audio)
            self._write(self._output_ring, self._from_engine.process(audio))
        frames = piece.shape[1]
        if self._output_ring.read_into(out) != frames:
            raise RuntimeError("output ring ran dry (internal error: latency planned too small)")
        self._write(self._dry_ring, piece)
        dry = self._dry_ring.read(frames)
        wet_gain = self._mix_gains(frames)
        if not (np.isscalar(wet_gain) and wet_gain == 1.0):
            out[:] = dry + wet_gain * (out - dry)

    def _mix_gains(self, frames: int) -> float | np.ndarray:
        """The wet gain for each of the next ``frames`` frames (a scalar while not gliding)."""
        if self._mix_frames_left == 0:
            return self._mix
        steps = np.arange(1, frames + 1)
        gains = np.where(steps < self._mix_frames_left, self._mix + self._mix_step * steps, self._mix_target)
        used = min(frames, self._mix_frames_left)
        self._mix_frames_left -= used
        self._mix = self._mix_target if self._mix_frames_left == 0 else self._mix + self._mix_step * used
        return gains.astype(np.float32)

    def _plan_output_padding(self) -> tuple[int, int]:
        """Silence the output ring must start with so it never runs dry, and the most it can hold beyond that.

        Frame counts through the resamplers and the hop re-blocking are pure
        functions of the host frames given so far, and periodic once started,
        so two periods plus the start-up show the worst case for any call split.
        """
        period = self.sample_rate // math.gcd(self.sample_rate, 1000 // HOP_MS)  # host frames per whole hops
        given = np.arange(2 * period + self.sample_rate // 10 + 1, dtype=np.int64)
        hops = self._to_engine.outputs_after(given) // self._hop
        returned = self._from_engine.outputs_after(hops * self._hop)
        deficit = given - returned
        return int(deficit.max()), int(-deficit.min())

    @staticmethod
    def _write(ring: RingBuffer, block: np.ndarray) -> None:
        if ring.write(np.ascontiguousarray(block, dtype=np.float32)) != block.shape[1]:
            raise RuntimeError("ring buffer full (internal error: ring sized too small)")
