"""The streaming engine: runs the stages it is given on host blocks of any size, at any input and output rate.

Audio travels input rate -> resampler to the chain's entry rate (48 kHz, or
16 kHz for a chain that starts with the model) -> input ring -> whole 10 ms
hops through the stages -> resampler from the chain's exit rate to the output
rate -> output ring. A call
that brings the stream to ``n`` input frames returns output up to frame
``ceil(n * output_rate / input_rate)`` (with equal rates: as many frames as given).
The output ring starts with just enough silence that it never runs dry, and the
output resampler adds the fraction of a frame that makes the whole delay a
whole number of output frames, so ``latency_samples`` is the exact delay. The
dry path (input resampled to the output rate, delayed by the same amount; exact
when the rates are equal) meets the wet path in the one dry/wet mixer for ``mix``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np

from speakup_fx._native import RingBuffer
from speakup_fx.dsp.mix import DryWetMixer
from speakup_fx.dsp.resample import StreamingResampler, check_sample_rate
from speakup_fx.params import PARAM_SPECS, default_params
from speakup_fx.runtime.batching import Steps, run_batched
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, HOP_MS, Stage, hop_frames

logger = logging.getLogger(__name__)

MAX_BLOCK_MS = 100
"""Host blocks are processed in pieces of at most this length, which bounds the rings."""

MIX_RAMP_MS = 20
"""A change of ``mix`` glides linearly over this long."""


class NonFiniteAudioError(ValueError):
    """A stage turned finite audio into NaN or infinity (the message names the stage)."""


def chain_rates(stages: Sequence[Stage]) -> tuple[int, int, int]:
    """``(entry rate, exit rate, summed latency in exit-rate frames)`` of ``stages``.

    An empty chain runs at 48 kHz. ``ValueError`` if their rates do not connect, or the latency
    is not a whole number of frames at the exit rate.
    """
    entry = stages[0].input_sample_rate if stages else ENGINE_SAMPLE_RATE
    sample_rate = entry
    latency_s = Fraction(0)
    for stage in stages:
        if stage.input_sample_rate != sample_rate:
            raise ValueError(
                f"{type(stage).__name__} takes {stage.input_sample_rate} Hz but is fed {sample_rate} Hz "
                "(the engine never resamples silently: add a ResampleStage)"
            )
        sample_rate = stage.output_sample_rate
        latency_s += Fraction(stage.latency_samples, sample_rate)
    for rate in (entry, sample_rate):
        hop_frames(rate)  # both ends need whole-frame hops
    frames = latency_s * sample_rate
    if frames.denominator != 1:
        raise ValueError(
            f"the chain's latency ({float(latency_s) * 1000:.4f} ms) is not a whole number of {sample_rate} Hz frames"
        )
    return entry, sample_rate, int(frames)


def validated_params(params: Mapping[str, float]) -> dict[str, float]:
    """``params`` checked against the specs in ``speakup_fx.params``; ``ValueError`` names a bad key or value."""
    checked = {}
    for name, value in params.items():
        if name not in PARAM_SPECS:
            raise ValueError(f"{name}: not a parameter (known: {', '.join(PARAM_SPECS)})")
        checked[name] = PARAM_SPECS[name].validate(value)
    return checked


class Engine:
    """Runs ``stages`` (see ``speakup_fx.stages.chain``) on float32 ``(channels, frames)`` blocks.

    Input is at ``sample_rate``, output at ``output_sample_rate`` (default: the same), delayed by
    ``latency_samples`` output frames; the output does not depend on how the stream is split into
    calls. Building an engine processes no audio and loads no model; ``prepare()`` allocates what
    the first block would.
    """

    def __init__(
        self,
        channels: int,
        sample_rate: int,
        stages: Sequence[Stage],
        params: Mapping[str, float],
        output_sample_rate: int | None = None,
    ) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        self.channels = channels
        self.sample_rate = check_sample_rate(sample_rate)
        self.output_sample_rate = check_sample_rate(output_sample_rate if output_sample_rate is not None else sample_rate)
        self._params = {**default_params(), **validated_params(params)}
        self._stages = tuple(stages)
        for stage in self._stages:
            if stage.channels != channels:
                raise ValueError(f"{type(stage).__name__} is built for {stage.channels} channel(s), the engine for {channels}")
        entry_rate, exit_rate, chain_latency = chain_rates(self._stages)
        self._hop, self._exit_hop = hop_frames(entry_rate), hop_frames(exit_rate)
        self._to_engine = StreamingResampler(channels, self.sample_rate, entry_rate)
        # Delay ticks of the way back that make (chain + resamplers) a whole number of output frames.
        common = math.gcd(self.output_sample_rate, exit_rate)
        ticks_per_exit_frame, ticks_per_output_frame = self.output_sample_rate // common, exit_rate // common
        chain_ticks = chain_latency * ticks_per_exit_frame
        fraction_ticks = -chain_ticks % ticks_per_output_frame
        self._from_engine = StreamingResampler(channels, exit_rate, self.output_sample_rate, fraction_ticks)
        self._dry_resampler = StreamingResampler(channels, self.sample_rate, self.output_sample_rate)
        self._max_block = max(1, self.sample_rate * MAX_BLOCK_MS // 1000)
        wet_padding, wet_surplus, dry_deficit, dry_surplus = self._plan_padding()
        wet_delay = (chain_ticks + fraction_ticks) // ticks_per_output_frame + wet_padding
        self.latency_samples = max(wet_delay, dry_deficit)
        """Delay of the output behind the input, in output frames (the same for the wet and the dry path)."""
        self._wet_padding = wet_padding + self.latency_samples - wet_delay
        max_output_block = self._max_block * self.output_sample_rate // self.sample_rate + 2
        engine_block = math.ceil(self._max_block * entry_rate / self.sample_rate) + 1
        self._input_ring = RingBuffer(channels, self._hop + engine_block)
        self._output_ring = RingBuffer(channels, self._wet_padding + max(0, wet_surplus) + max_output_block)
        self._dry_ring = RingBuffer(channels, self.latency_samples + max(0, dry_surplus) + max_output_block)
        self._mixer = DryWetMixer(
            channels, 0, max(1, self.output_sample_rate * MIX_RAMP_MS // 1000), self._params["mix"]
        )
        self.reset()
        logger.debug(
            "engine %d -> %d Hz, %d ch: %s; latency %d frames", self.sample_rate, self.output_sample_rate, channels,
            [type(s).__name__ for s in self._stages], self.latency_samples,
        )

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The chain, in processing order."""
        return self._stages

    @property
    def params(self) -> dict[str, float]:
        """Current parameter values (a copy)."""
        return dict(self._params)

    @property
    def offered_params(self) -> frozenset[str]:
        """The parameters this chain acts on: its stages' and the engine's own ``mix``."""
        return frozenset({"mix", *(name for stage in self._stages for name in stage.uses)})

    def param_delay_s(self, name: str) -> float:
        """Seconds of audio between the input and where ``name`` acts (0 for one no stage uses).

        A change made once the input has reached time ``t`` acts on the audio of time ``t - delay``
        (to the hop): the delay is the latency of the stages before the first one using ``name``,
        and all of ``latency_samples`` for ``mix``, which the engine applies at its output.
        """
        if name == "mix":
            return self.latency_samples / self.output_sample_rate
        delay_s = Fraction(0)
        for stage in self._stages:
            if name in stage.uses:
                return float(delay_s)
            delay_s += Fraction(stage.latency_samples, stage.output_sample_rate)
        return 0.0

    def set_params(self, params: Mapping[str, float]) -> None:
        """Take new values for some parameters; they apply smoothly from the next block."""
        changed = validated_params(params)
        self._params.update(changed)
        if "mix" in changed:
            self._mixer.set_wet_gain(changed["mix"])
        for stage in self._stages:
            stage.set_params(changed)

    def prepare(self) -> None:
        """Allocate everything the first block would (e.g. load the neural engine's model)."""
        for stage in self._stages:
            stage.prepare()

    def reset(self) -> None:
        """Forget all streaming state: the next block is the start of a new stream."""
        for stage in self._stages:
            stage.reset()
        for resampler in (self._to_engine, self._from_engine, self._dry_resampler):
            resampler.reset()
        for ring, silence in (
            (self._input_ring, 0),
            (self._output_ring, self._wet_padding),
            (self._dry_ring, self.latency_samples),
        ):
            ring.clear()
            self._write(ring, np.zeros((self.channels, silence), np.float32))
        self._mixer.reset()
        self._frames_in = self._frames_out = 0

    @property
    def frames_in(self) -> int:
        """Input frames this stream has taken since the last reset."""
        return self._frames_in

    def output_frames(self, input_frames: int) -> int:
        """Output frames for a stream of ``input_frames`` input frames: every output instant up to the last input's."""
        return -(-input_frames * self.output_sample_rate // self.sample_rate)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Take float32 ``(channels, frames)``; return the output that the stream so far has made due."""
        return run_batched([self.steps(block)])[0]

    def steps(self, block: np.ndarray) -> Steps[np.ndarray]:
        """``process(block)`` with the model calls of its stages handed to the caller (``runtime.batching``).

        The model server runs the steps of all its slots side by side so their calls step as one batch.
        """
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"block must be shaped ({self.channels}, frames), got {block.shape}")
        block = np.ascontiguousarray(block, dtype=np.float32)
        pieces = []
        for start in range(0, block.shape[1], self._max_block):
            pieces.append((yield from self._piece_steps(block[:, start : start + self._max_block])))
        if len(pieces) == 1:
            return pieces[0]
        return np.concatenate(pieces, axis=1) if pieces else np.zeros((self.channels, 0), np.float32)

    def _piece_steps(self, piece: np.ndarray) -> Steps[np.ndarray]:
        self._write(self._input_ring, self._to_engine.process(piece))
        hops = self._input_ring.available() // self._hop
        if hops:
            audio = self._input_ring.read(hops * self._hop)
            for stage in self._stages:
                audio = yield from stage.steps(audio)
                if not np.isfinite(audio).all():
                    raise NonFiniteAudioError(f"{type(stage).__name__} produced NaN or infinite samples")
            self._write(self._output_ring, self._from_engine.process(audio))
        self._frames_in += piece.shape[1]
        frames = self.output_frames(self._frames_in) - self._frames_out
        self._frames_out += frames
        wet = np.empty((self.channels, frames), np.float32)
        if self._output_ring.read_into(wet) != frames:
            raise RuntimeError("output ring ran dry (internal error: latency planned too small)")
        self._write(self._dry_ring, self._dry_resampler.process(piece))
        return self._mixer.mix(self._dry_ring.read(frames), wet)

    def _plan_padding(self) -> tuple[int, int, int, int]:
        """Silence the wet and the dry ring must start with so they never run dry, and the most each holds beyond.

        Frame counts through the resamplers and the hop re-blocking are pure
        functions of the input frames given so far, and periodic once started,
        so two periods plus the start-up show the worst case for any call split.
        """
        hop_period = self.sample_rate // math.gcd(self.sample_rate, 1000 // HOP_MS)  # input frames per whole hops
        rate_period = self.sample_rate // math.gcd(self.sample_rate, self.output_sample_rate)
        period = hop_period * rate_period // math.gcd(hop_period, rate_period)
        given = np.arange(2 * period + self.sample_rate // 10 + 1, dtype=np.int64)
        wanted = -(-given * self.output_sample_rate // self.sample_rate)
        hops = self._to_engine.outputs_after(given) // self._hop
        wet_deficit = wanted - self._from_engine.outputs_after(hops * self._exit_hop)
        dry_deficit = wanted - self._dry_resampler.outputs_after(given)
        return int(wet_deficit.max()), int(-wet_deficit.min()), int(dry_deficit.max()), int(-dry_deficit.min())

    @staticmethod
    def _write(ring: RingBuffer, block: np.ndarray) -> None:
        if ring.write(np.ascontiguousarray(block, dtype=np.float32)) != block.shape[1]:
            raise RuntimeError("ring buffer full (internal error: ring sized too small)")
