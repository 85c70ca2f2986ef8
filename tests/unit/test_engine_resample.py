"""The streaming resampler (host rate <-> 48 kHz) and the engine's ResampleStage (48 kHz <-> 16 kHz)."""

from __future__ import annotations

import numpy as np
import pytest

from speakup_fx.dsp.resample import StreamingResampler, check_sample_rate
from speakup_fx.stages.resample import ResampleStage
from synthetic import noise, sine

RATE_PAIRS = [
    (44100, 48000), (48000, 44100), (48000, 16000), (16000, 48000), (8000, 48000), (48000, 11025), (192000, 48000)
]


def run_in_pieces(resampler: StreamingResampler, audio: np.ndarray, sizes: list[int]) -> np.ndarray:
    pieces, start = [], 0
    for size in sizes:
        pieces.append(resampler.process(audio[:, start : start + size]))
        start += size
    assert start >= audio.shape[1]
    return np.concatenate(pieces, axis=1)


def random_sizes(frames: int, seed: int, largest: int = 3000) -> list[int]:
    sizes = np.random.default_rng(seed).integers(0, largest, size=frames).tolist()
    return sizes[: int(np.searchsorted(np.cumsum(sizes), frames)) + 1]


@pytest.mark.parametrize(("input_rate", "output_rate"), RATE_PAIRS)
def test_resampler_output_does_not_depend_on_the_call_split(input_rate: int, output_rate: int) -> None:
    audio = noise(0.25, input_rate, channels=2, level_db=-10)
    frames = audio.shape[1]
    whole = StreamingResampler(2, input_rate, output_rate).process(audio)
    assert whole.shape[1] == StreamingResampler(2, input_rate, output_rate).outputs_after(frames)
    for sizes in ([1] * frames, [37] * (frames // 37 + 1), random_sizes(frames, seed=input_rate)):
        split = run_in_pieces(StreamingResampler(2, input_rate, output_rate), audio, sizes)
        np.testing.assert_array_equal(split, whole)


@pytest.mark.parametrize("band_fraction", [0.02, 0.4])
@pytest.mark.parametrize(("input_rate", "output_rate"), RATE_PAIRS)
def test_resampler_output_is_time_aligned_with_its_input(
    input_rate: int, output_rate: int, band_fraction: float
) -> None:
    frequency_hz = band_fraction * min(input_rate, output_rate)  # 0.4: near the top of the pass band
    audio = sine(frequency_hz, 0.5, input_rate, amplitude=0.5)
    out = StreamingResampler(1, input_rate, output_rate).process(audio)[0]
    t = np.arange(out.size) / output_rate
    ideal = 0.5 * np.sin(2 * np.pi * frequency_hz * t)
    middle = slice(output_rate // 10, out.size - output_rate // 10)  # away from the fades
    assert np.abs(out[middle] - ideal[middle]).max() < 1e-4


@pytest.mark.parametrize(("input_rate", "output_rate"), [(48000, 44100), (48000, 16000), (192000, 48000)])
def test_downsampling_removes_what_would_alias(input_rate: int, output_rate: int) -> None:
    audio = sine(output_rate / 2 * 1.06, 0.5, input_rate, amplitude=0.5)  # above the output's Nyquist frequency
    out = StreamingResampler(1, input_rate, output_rate).process(audio)[0]
    middle = out[output_rate // 10 : -output_rate // 10]
    assert 20 * np.log10(np.abs(middle).max() / 0.5) < -60


def test_delay_ticks_delay_the_output_by_that_fraction_of_an_output_frame() -> None:
    audio = noise(0.1, 44100, level_db=-10)
    reference = StreamingResampler(1, 44100, 48000)
    ticks_per_output = reference.ticks_per_output
    aligned = reference.process(audio)
    one_frame_late = StreamingResampler(1, 44100, 48000, delay_ticks=ticks_per_output).process(audio)
    np.testing.assert_allclose(one_frame_late[:, 1 : aligned.shape[1] + 1], aligned, atol=1e-6)
    half_frame = StreamingResampler(1, 44100, 48000, delay_ticks=ticks_per_output // 2).process(audio)
    assert not np.allclose(half_frame[:, : aligned.shape[1]], aligned, atol=1e-3)


def test_same_rate_resampling_is_an_exact_copy() -> None:
    audio = noise(0.1, 48000, channels=2)
    np.testing.assert_array_equal(StreamingResampler(2, 48000, 48000).process(audio), audio)


@pytest.mark.parametrize("sample_rate", [7999, 192001, 0, -48000, 44100.5, float("nan"), "48000", True, None])
def test_absurd_sample_rates_are_rejected_naming_sample_rate(sample_rate: object) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        check_sample_rate(sample_rate)
    with pytest.raises(ValueError, match="sample_rate"):
        StreamingResampler(1, sample_rate, 48000)


@pytest.mark.parametrize("sample_rate", [8000, 11025, 22050, 44100, 44100.0, 96000, 192000, 37919])
def test_any_whole_number_rate_in_range_is_accepted(sample_rate: float) -> None:
    assert check_sample_rate(sample_rate) == int(sample_rate)


@pytest.mark.parametrize(("input_rate", "output_rate"), [(48000, 16000), (16000, 48000)])
def test_resample_stage_returns_exactly_one_hop_per_hop_whatever_the_hops_per_call(
    input_rate: int, output_rate: int
) -> None:
    hop_in, hop_out = input_rate // 100, output_rate // 100
    audio = noise(0.5, input_rate, channels=2, level_db=-10)[:, : 50 * hop_in]
    whole = ResampleStage(2, input_rate, output_rate).process(audio)
    assert whole.shape == (2, 50 * hop_out)
    stage = ResampleStage(2, input_rate, output_rate)
    pieces, hop = [], 0
    for hops in [1, 3, 1, 7, 13, 25]:
        piece = stage.process(audio[:, hop * hop_in : (hop + hops) * hop_in])
        assert piece.shape == (2, hops * hop_out)
        pieces.append(piece)
        hop += hops
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), whole)


@pytest.mark.parametrize(("input_rate", "output_rate"), [(48000, 16000), (16000, 48000)])
def test_resample_stage_delays_by_exactly_its_latency(input_rate: int, output_rate: int) -> None:
    frequency_hz = 440.0
    stage = ResampleStage(1, input_rate, output_rate)
    assert 0 < stage.latency_samples < output_rate * 0.005
    out = stage.process(sine(frequency_hz, 0.5, input_rate)[:, : 50 * (input_rate // 100)])[0]
    t = (np.arange(out.size) - stage.latency_samples) / output_rate
    ideal = 0.5 * np.sin(2 * np.pi * frequency_hz * t)
    middle = slice(output_rate // 10, out.size - output_rate // 10)
    assert np.abs(out[middle] - ideal[middle]).max() < 1e-4


def test_resample_stage_round_trip_48k_16k_48k_keeps_speech_band_audio() -> None:
    down, up = ResampleStage(1, 48000, 16000), ResampleStage(1, 16000, 48000)
    audio = sine(1000.0, 0.5, 48000)[:, :24000]
    out = up.process(down.process(audio))
    delay = 3 * down.latency_samples + up.latency_samples
    middle = slice(4800, 24000 - 4800)
    np.testing.assert_allclose(out[0, middle], audio[0, middle.start - delay : middle.stop - delay], atol=1e-4)


def test_resample_stage_rejects_partial_hops() -> None:
    with pytest.raises(ValueError, match="480"):
        ResampleStage(1, 48000, 16000).process(np.zeros((1, 500), np.float32))


def test_resample_stage_reset_forgets_the_past() -> None:
    stage = ResampleStage(1, 48000, 16000)
    audio = noise(0.1, 48000)[:, :4800]
    first = stage.process(audio)
    stage.process(audio[:, ::-1].copy())
    stage.reset()
    np.testing.assert_array_equal(stage.process(audio), first)


@pytest.mark.parametrize(("input_rate", "output_rate"), [(48000, 16000), (16000, 48000), (44100, 16000), (22050, 22050)])
def test_whole_signal_resampling_is_aligned_and_sized_like_the_engine(input_rate, output_rate):
    from speakup_fx.dsp.resample import resample

    frequency_hz = 1000.0
    x = (0.5 * np.sin(2 * np.pi * frequency_hz * np.arange(int(0.73 * input_rate)) / input_rate)).astype(np.float32)
    y = resample(x, input_rate, output_rate)
    assert y.shape == (-(-x.size * output_rate // input_rate),) and y.dtype == np.float32
    ideal = 0.5 * np.sin(2 * np.pi * frequency_hz * np.arange(y.size) / output_rate)
    middle = slice(output_rate // 20, y.size - output_rate // 20)
    assert np.abs(y[middle] - ideal[middle]).max() < 1e-3
    stereo = resample(np.stack([x, -x]), input_rate, output_rate)
    np.testing.assert_array_equal(stereo[0], y)
