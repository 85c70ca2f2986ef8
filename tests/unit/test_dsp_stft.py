"""StreamingStft: perfect reconstruction, block-size invariance, frames equal a direct FFT."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic

from speakup_fx.dsp.stft import StreamingStft, sqrt_hann_window


def test_unmodified_spectra_reconstruct_the_input_delayed():
    audio = synthetic.noisy_speech(1.0, 48_000, 2).astype(np.float64)
    stft = StreamingStft(2)
    out = stft.synthesise(stft.analyse(audio))
    delay = stft.latency_samples
    assert delay == 1440
    np.testing.assert_allclose(out[:, delay:], audio[:, :-delay], atol=1e-12)


def test_streaming_in_any_number_of_hops_gives_the_same_frames_and_output():
    audio = synthetic.speech_like(0.5, 48_000, 1).astype(np.float64)
    whole = StreamingStft(1)
    whole_spectra = whole.analyse(audio)
    whole_out = whole.synthesise(whole_spectra * 0.5)
    split = StreamingStft(1)
    parts, outs = [], []
    for start in range(0, audio.shape[-1], 3 * 480):
        spectra = split.analyse(audio[:, start : start + 3 * 480])
        parts.append(spectra)
        outs.append(split.synthesise(spectra * 0.5))
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole_spectra, atol=1e-12)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), whole_out, atol=1e-12)


def test_each_frame_is_the_fft_of_the_last_n_fft_samples():
    audio = synthetic.noise(0.2, 48_000).astype(np.float64)
    spectra = StreamingStft(1).analyse(audio)
    frame = 10  # ends at sample 11 * 480
    expected = np.fft.rfft(audio[0, 11 * 480 - 1920 : 11 * 480] * sqrt_hann_window(1920))
    np.testing.assert_allclose(spectra[0, frame], expected, atol=1e-10)


def test_squared_window_overlap_adds_to_a_constant():
    window = sqrt_hann_window(1920) ** 2
    total = sum(np.roll(window, shift) for shift in range(0, 1920, 480))
    np.testing.assert_allclose(total, 2.0, atol=1e-12)


def test_partial_hops_and_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="multiple of 480"):
        StreamingStft(1).analyse(np.zeros((1, 500)))
    with pytest.raises(ValueError, match="n_fft"):
        StreamingStft(1, n_fft=1000, hop=480)
