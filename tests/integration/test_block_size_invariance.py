"""The real chains' output (classic; neural with and without bandwidth extension) does not depend on ``buffer_size`` nor on how a stream is split into calls.

Tolerance: max abs difference <= 1e-5 (DESIGN.md), at 48, 44.1 and 16 kHz, mono and stereo.
"""

from __future__ import annotations

import numpy as np
import pytest

from speakup_fx import SpeakUp
from synthetic import noisy_speech

TOLERANCE = 1e-5
DURATION_S = 0.6
BUFFER_SIZE_ONE_S = 0.12  # one frame per call is slow in Python; a fraction of a second shows it


def podcast_effect() -> SpeakUp:
    return SpeakUp(preset="podcast")


CASES = [(48000, 1), (48000, 2), (44100, 1), (44100, 2), (16000, 1), (16000, 2)]
"""(sample rate, channels)"""


@pytest.fixture(scope="module", params=CASES, ids=lambda case: f"{case[0]}Hz-{case[1]}ch")
def case(request: pytest.FixtureRequest) -> tuple[int, np.ndarray]:
    sample_rate, channels = request.param
    return sample_rate, noisy_speech(DURATION_S, sample_rate, channels=channels, snr_db=10.0, seed=channels)


@pytest.mark.parametrize("buffer_size", [37, 512, 4096])
def test_output_does_not_depend_on_buffer_size(case: tuple[int, np.ndarray], buffer_size: int) -> None:
    sample_rate, audio = case
    reference = podcast_effect()(audio, sample_rate, buffer_size=65536)
    out = podcast_effect()(audio, sample_rate, buffer_size=buffer_size)
    assert out.shape == audio.shape
    assert np.abs(reference).max() > 0.01  # the chain passes audio through, so the comparison means something
    np.testing.assert_allclose(out, reference, rtol=0, atol=TOLERANCE)


def test_output_with_one_frame_per_buffer_matches(case: tuple[int, np.ndarray]) -> None:
    sample_rate, audio = case
    audio = audio[:, : int(BUFFER_SIZE_ONE_S * sample_rate)]
    reference = podcast_effect()(audio, sample_rate, buffer_size=65536)
    np.testing.assert_allclose(podcast_effect()(audio, sample_rate, buffer_size=1), reference, rtol=0, atol=TOLERANCE)


def test_a_stream_split_at_random_into_calls_matches_one_call(case: tuple[int, np.ndarray]) -> None:
    sample_rate, audio = case
    effect = podcast_effect()
    whole = effect(audio, sample_rate, reset=False)
    effect.reset()
    rng = np.random.default_rng(sample_rate + audio.shape[0])
    bounds = np.unique(np.concatenate([[0, audio.shape[1]], rng.integers(0, audio.shape[1], size=40)]))
    pieces = [
        effect(audio[:, a:b], sample_rate, buffer_size=int(rng.integers(1, 5000)), reset=False)
        for a, b in zip(bounds, bounds[1:])
    ]
    assert [p.shape[1] for p in pieces] == list(np.diff(bounds))
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, rtol=0, atol=TOLERANCE)


def test_reset_false_output_is_the_reset_true_output_delayed_by_latency_samples(case: tuple[int, np.ndarray]) -> None:
    sample_rate, audio = case
    aligned = podcast_effect()(audio, sample_rate)
    effect = podcast_effect()
    streamed = effect(np.concatenate([audio, np.zeros_like(audio)], axis=1), sample_rate, reset=False)
    latency = effect.latency_samples
    np.testing.assert_allclose(streamed[:, latency : latency + audio.shape[1]], aligned, rtol=0, atol=TOLERANCE)


# --- the neural engine, with the shipped model ------------------------------------------------------------


@pytest.fixture(scope="module")
def restore_case() -> tuple[int, np.ndarray, np.ndarray]:
    """Stereo 44.1 kHz speech in noise and its output from one whole-file call of the restore preset."""
    sample_rate = 44100
    audio = noisy_speech(0.5, sample_rate, channels=2, snr_db=5.0, seed=7)
    reference = SpeakUp(preset="restore", device="cpu")(audio, sample_rate, buffer_size=65536)
    return sample_rate, audio, reference


@pytest.mark.parametrize("buffer_size", [1, 37, 512, 4096])
def test_the_restore_preset_does_not_depend_on_buffer_size(
    restore_case: tuple[int, np.ndarray, np.ndarray], buffer_size: int
) -> None:
    sample_rate, audio, reference = restore_case
    frames = int(BUFFER_SIZE_ONE_S * sample_rate) if buffer_size == 1 else audio.shape[1]
    effect = SpeakUp(preset="restore", device="cpu")
    if buffer_size == 1:  # streaming one frame per call; compare the stream's first frames with the reference's
        out = effect(audio[:, :frames], sample_rate, buffer_size=1, reset=False)
        latency = effect.latency_samples
        np.testing.assert_allclose(out[:, latency:], reference[:, : frames - latency], rtol=0, atol=TOLERANCE)
        return
    assert np.abs(reference).max() > 0.01
    np.testing.assert_allclose(effect(audio, sample_rate, buffer_size=buffer_size), reference, rtol=0, atol=TOLERANCE)


def test_the_restore_preset_does_not_depend_on_how_a_stream_is_split(
    restore_case: tuple[int, np.ndarray, np.ndarray],
) -> None:
    sample_rate, audio, reference = restore_case
    effect = SpeakUp(preset="restore", device="auto")
    bounds = np.sort(np.random.default_rng(3).choice(np.arange(1, audio.shape[1]), 30, replace=False))
    bounds = [0, *bounds.tolist(), audio.shape[1]]
    pieces = [effect(audio[:, a:b], sample_rate, reset=False) for a, b in zip(bounds, bounds[1:])]
    latency = effect.latency_samples
    streamed = np.concatenate(pieces, axis=1)
    np.testing.assert_allclose(streamed[:, latency:], reference[:, :-latency], rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("preset", ["video-call-rescue", "lecture-room"])
def test_a_chain_with_bandwidth_extension_does_not_depend_on_buffer_size_or_splits(preset: str) -> None:
    """Enhancer, 16 -> 48 kHz extension and the DSP chain at 48 kHz stereo: one whole-file call vs buffers and random splits."""
    sample_rate = 48000
    audio = noisy_speech(0.4, sample_rate, channels=2, snr_db=5.0, seed=11)
    effect = SpeakUp(preset=preset, device="cpu")
    assert effect.options.bandwidth_extension
    reference = effect(audio, sample_rate, buffer_size=65536)
    assert np.abs(reference).max() > 0.01
    for buffer_size in (37, 4096):
        np.testing.assert_allclose(effect(audio, sample_rate, buffer_size=buffer_size), reference, rtol=0, atol=TOLERANCE)
    bounds = np.sort(np.random.default_rng(5).choice(np.arange(1, audio.shape[1]), 20, replace=False))
    bounds = [0, *bounds.tolist(), audio.shape[1]]
    effect.reset()
    pieces = [effect(audio[:, a:b], sample_rate, reset=False) for a, b in zip(bounds, bounds[1:])]
    latency = effect.latency_samples
    streamed = np.concatenate(pieces, axis=1)
    np.testing.assert_allclose(streamed[:, latency:], reference[:, :-latency], rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("sample_rate", [48000, 44100])
def test_neural_chain_latency_is_compensated_through_the_16_khz_section(sample_rate: int) -> None:
    from synthetic import chirp

    sweep = chirp(100.0, 6000.0, 0.5, sample_rate)  # inside the 16 kHz section's pass band
    effect = SpeakUp(preset="restore", denoise_amount=0.0, dereverb_amount=0.0)  # the chain only delays
    out = effect(sweep, sample_rate)
    assert effect.latency_samples > 0
    correlation = np.correlate(out[0], sweep[0], mode="full")
    assert int(np.argmax(correlation)) - (sweep.shape[1] - 1) == 0
    np.testing.assert_allclose(out, sweep, atol=2e-3)
