"""The engine: rate checks, re-blocking, latency, rate conversion, mix and parameters (with small test stages)."""

from __future__ import annotations

import numpy as np
import pytest

import speakup_fx.engine as engine_module
from speakup_fx.engine import Engine, chain_rates
from speakup_fx.stages.base import Stage
from stage_doubles import DelayStage
from synthetic import noise, sine


class ScaleStage(Stage):
    """Test stage: multiplies by ``scale`` and records the parameter updates it receives."""

    def __init__(self, channels: int, scale: float = 1.0) -> None:
        super().__init__(channels)
        self.scale = scale
        self.updates: list[dict] = []
        self.block_sizes: list[int] = []

    def process(self, block: np.ndarray) -> np.ndarray:
        self.block_sizes.append(block.shape[1])
        return block * np.float32(self.scale)

    def reset(self) -> None:
        pass

    def set_params(self, params: dict) -> None:
        self.updates.append(dict(params))


def run_in_pieces(engine: Engine, audio: np.ndarray, sizes: list[int]) -> np.ndarray:
    outputs, start = [], 0
    for size in sizes:
        piece = audio[:, start : start + size]
        out = engine.process(piece)
        assert out.shape == piece.shape
        outputs.append(out)
        start += size
    return np.concatenate(outputs, axis=1)


def lag_of(reference: np.ndarray, delayed: np.ndarray) -> int:
    """Lag (frames) that best aligns ``delayed`` with ``reference`` (1-D), by cross-correlation."""
    correlation = np.correlate(delayed, reference, mode="full")
    return int(np.argmax(correlation)) - (reference.size - 1)


# --- rates and latency of a chain -------------------------------------------------------------


def test_stages_whose_rates_do_not_connect_are_rejected() -> None:
    with pytest.raises(ValueError, match="16000 Hz but is fed 48000 Hz"):
        chain_rates([DelayStage(1, 0), DelayStage(1, 0, sample_rate=16000)])


def test_a_chain_may_start_at_the_model_rate_and_its_latency_counts_at_its_exit_rate() -> None:
    from speakup_fx.stages.resample import ResampleStage

    up = ResampleStage(1, 16000, 48000)
    assert chain_rates([DelayStage(1, 16, sample_rate=16000), up]) == (16000, 48000, 48 + up.latency_samples)
    engine = Engine(1, 44100, [DelayStage(1, 16, sample_rate=16000), up], {})
    frequency_hz = 2000.0
    out = engine.process(sine(frequency_hz, 0.4, 44100))[0]
    t = (np.arange(out.size) - engine.latency_samples) / 44100
    middle = slice(4410, out.size - 4410)
    assert np.abs(out[middle] - 0.5 * np.sin(2 * np.pi * frequency_hz * t)[middle]).max() < 1e-3


def test_engine_refuses_a_chain_whose_rates_do_not_connect() -> None:
    chain = lambda channels: [DelayStage(channels, 0), DelayStage(channels, 0, sample_rate=16000)]
    with pytest.raises(ValueError, match="never resamples silently"):
        Engine(1, 48000, chain(1), {})


# --- streaming ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", [48000, 44100, 16000, 8000, 11025, 96000, 192000, 37919])
def test_engine_returns_as_many_frames_as_it_is_given_and_the_split_does_not_matter(
    sample_rate: int
) -> None:
    chain = lambda channels: [DelayStage(channels, 7), ScaleStage(channels, 0.5)]
    audio = noise(0.3, sample_rate, channels=2, level_db=-10)
    whole = Engine(2, sample_rate, chain(2), {}).process(audio)
    assert whole.shape == audio.shape and whole.dtype == np.float32
    sizes = np.random.default_rng(sample_rate).integers(0, 2000, size=200).tolist()
    split = run_in_pieces(Engine(2, sample_rate, chain(2), {}), audio, sizes)
    np.testing.assert_array_equal(split[:, : audio.shape[1]], whole)


def test_at_48_khz_latency_samples_is_the_exact_delay_of_the_wet_path() -> None:
    chain = lambda channels: [DelayStage(channels, 123)]
    engine = Engine(1, 48000, chain(1), {})
    assert engine.latency_samples == 123 + 479  # the chain plus waiting for a whole 480-frame hop
    audio = noise(0.2, 48000, level_db=-10)
    out = engine.process(audio)
    latency = engine.latency_samples
    np.testing.assert_array_equal(out[:, latency:], audio[:, :-latency])
    assert not out[:, :latency].any()


@pytest.mark.parametrize("sample_rate", [44100, 22050, 11025, 8000, 16000, 96000, 37919])
@pytest.mark.parametrize("chain_delay_frames", [0, 7, 100])
def test_at_other_rates_latency_samples_is_a_whole_number_and_the_true_delay(
    sample_rate: int, chain_delay_frames: int
) -> None:
    chain = lambda channels: [DelayStage(channels, chain_delay_frames)]
    engine = Engine(1, sample_rate, chain(1), {})
    latency = engine.latency_samples
    assert isinstance(latency, int)
    assert latency < sample_rate * 0.03  # hop + both resamplers' look-ahead + the chain, nothing wasted
    frequency_hz = 0.3 * sample_rate / 2
    audio = sine(frequency_hz, 0.4, sample_rate)
    out = engine.process(audio)[0]
    t = (np.arange(out.size) - latency) / sample_rate
    ideal = 0.5 * np.sin(2 * np.pi * frequency_hz * t)
    middle = slice(sample_rate // 10, out.size - sample_rate // 10)
    assert np.abs(out[middle] - ideal[middle]).max() < 1e-4


def test_an_impulse_comes_out_latency_samples_later() -> None:
    chain = lambda channels: [DelayStage(channels, 31)]
    audio = np.zeros((2, 22050), np.float32)
    audio[:, 5000] = 1.0
    engine = Engine(2, 44100, chain(2), {})
    out = engine.process(audio)
    assert list(np.argmax(np.abs(out), axis=1)) == [5000 + engine.latency_samples] * 2
    assert lag_of(noise(0.5, 44100, level_db=-10)[0], Engine(1, 44100, chain(1), {}).process(
        noise(0.5, 44100, level_db=-10))[0]) == engine.latency_samples


def test_stages_receive_whole_hops_only() -> None:
    scale = {}
    chain = lambda channels: [scale.setdefault("stage", ScaleStage(channels))]
    engine = Engine(1, 44100, chain(1), {})
    run_in_pieces(engine, noise(0.3, 44100), [1, 5, 333, 2000, 17, 4000, 7000])
    sizes = scale["stage"].block_sizes
    assert sizes and all(size % 480 == 0 and size > 0 for size in sizes)


def test_reset_starts_a_new_stream() -> None:
    chain = lambda channels: [DelayStage(channels, 50)]
    engine = Engine(1, 44100, chain(1), {})
    audio = noise(0.2, 44100)
    first = engine.process(audio)
    engine.process(np.ones_like(audio))
    engine.reset()
    np.testing.assert_array_equal(engine.process(audio), first)


def test_process_rejects_a_block_with_the_wrong_channel_count() -> None:
    chain = lambda channels: []
    with pytest.raises(ValueError, match=r"\(2, frames\)"):
        Engine(2, 48000, chain(2), {}).process(np.zeros((1, 100), np.float32))


@pytest.mark.parametrize("channels", [0, 3])
def test_engine_takes_mono_or_stereo_only(channels: int) -> None:
    chain = lambda channels: []
    with pytest.raises(ValueError, match="channels"):
        Engine(channels, 48000, chain(channels), {})


# --- parameters and mix -------------------------------------------------------------------------


def test_parameter_changes_reach_every_stage() -> None:
    stages = []
    chain = lambda channels: stages.extend([ScaleStage(channels), ScaleStage(channels)]) or stages
    engine = Engine(1, 48000, chain(1), {"denoise_amount": 0.2})
    assert engine.params["denoise_amount"] == 0.2
    engine.set_params({"presence_db": 4.0})
    assert all(stage.updates == [{"presence_db": 4.0}] for stage in stages)
    assert engine.params["presence_db"] == 4.0


@pytest.mark.parametrize(
    ("params", "message"), [({"denoise_amount": 2.0}, "denoise_amount"), ({"bogus_db": 1.0}, "bogus_db")]
)
def test_bad_parameters_are_rejected_naming_them(params: dict, message: str) -> None:
    chain = lambda channels: []
    with pytest.raises(ValueError, match=message):
        Engine(1, 48000, chain(1), params)
    with pytest.raises(ValueError, match=message):
        Engine(1, 48000, chain(1), {}).set_params(params)


@pytest.mark.parametrize("sample_rate", [48000, 44100])
def test_mix_zero_is_the_input_delayed_by_latency_samples(sample_rate: int) -> None:
    chain = lambda channels: [DelayStage(channels, 20), ScaleStage(channels, -1.0)]
    engine = Engine(2, sample_rate, chain(2), {"mix": 0.0})
    audio = noise(0.2, sample_rate, channels=2)
    out = engine.process(audio)
    latency = engine.latency_samples
    np.testing.assert_array_equal(out[:, latency:], audio[:, :-latency])


def test_half_mix_of_an_aligned_inverted_wet_path_cancels() -> None:
    chain = lambda channels: [DelayStage(channels, 20), ScaleStage(channels, -1.0)]
    engine = Engine(1, 44100, chain(1), {"mix": 0.5})
    audio = sine(1000.0, 0.3, 44100)
    out = engine.process(audio)
    assert np.abs(out).max() < 1e-4  # wet and dry are aligned to a fraction of a frame


def test_a_mix_change_glides_without_a_jump() -> None:
    chain = lambda channels: [ScaleStage(channels, -1.0)]
    engine = Engine(1, 48000, chain(1), {})
    dc = np.full((1, 4800), 0.5, np.float32)
    engine.process(dc)  # wet = -0.5 once the delay has passed
    engine.set_params({"mix": 0.0})
    out = engine.process(dc)[0]
    assert out[0] == pytest.approx(-0.5, abs=0.01) and out[-1] == pytest.approx(0.5)
    assert np.abs(np.diff(out)).max() < 1.0 / (48000 * engine_module.MIX_RAMP_MS / 1000) * 1.01


# --- different input and output rates -------------------------------------------------------------


@pytest.mark.parametrize(("sample_rate", "output_sample_rate"), [(16000, 48000), (44100, 48000), (48000, 22050)])
def test_an_engine_converts_rates_once_with_split_independent_output(sample_rate: int, output_sample_rate: int) -> None:
    chain = lambda channels: [DelayStage(channels, 7)]
    audio = noise(0.3, sample_rate, channels=2, level_db=-10)
    engine = Engine(2, sample_rate, chain(2), {}, output_sample_rate)
    whole = engine.process(audio)
    assert whole.shape == (2, -(-audio.shape[1] * output_sample_rate // sample_rate))
    sizes = np.random.default_rng(1).integers(0, 3000, size=40).tolist()
    pieces, start = [], 0
    split_engine = Engine(2, sample_rate, chain(2), {}, output_sample_rate)
    for size in sizes:
        pieces.append(split_engine.process(audio[:, start : start + size]))
        start += size
    split = np.concatenate(pieces, axis=1)
    assert split.shape[1] == split_engine.output_frames(min(start, audio.shape[1]))
    np.testing.assert_array_equal(split, whole[:, : split.shape[1]])


@pytest.mark.parametrize("mix", [1.0, 0.0])
@pytest.mark.parametrize(("sample_rate", "output_sample_rate"), [(16000, 48000), (44100, 32000)])
def test_with_other_output_rates_wet_and_dry_come_out_latency_samples_late(
    sample_rate: int, output_sample_rate: int, mix: float
) -> None:
    engine = Engine(1, sample_rate, [DelayStage(1, 100)], {"mix": mix}, output_sample_rate)
    frequency_hz = 0.2 * min(sample_rate, output_sample_rate) / 2
    out = engine.process(sine(frequency_hz, 0.4, sample_rate))[0]
    t = (np.arange(out.size) - engine.latency_samples) / output_sample_rate
    ideal = 0.5 * np.sin(2 * np.pi * frequency_hz * t)
    middle = slice(output_sample_rate // 10, out.size - output_sample_rate // 10)
    assert np.abs(out[middle] - ideal[middle]).max() < 1e-4


class NanStage(ScaleStage):
    def process(self, block: np.ndarray) -> np.ndarray:
        return np.full_like(block, np.nan)


def test_a_stage_that_makes_non_finite_audio_is_named() -> None:
    engine = Engine(1, 48000, [ScaleStage(1), NanStage(1)], {})
    with pytest.raises(engine_module.NonFiniteAudioError, match="NanStage"):
        engine.process(noise(0.1, 48000))


def test_offered_params_are_the_stages_and_mix() -> None:
    class Uses(ScaleStage):
        uses = ("presence_db",)

    assert Engine(1, 48000, [Uses(1), ScaleStage(1)], {}).offered_params == {"presence_db", "mix"}
