"""The audiobook-acx preset meets ACX's three numbers on a noisy, humming synthetic narration.

ACX (Audible) asks for RMS between -23 and -18 dB over the whole file, sample peaks at or below
-3 dB and a noise floor (the quietest 500 ms, i.e. the room tone) at or below -60 dB, all dBFS.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import synthetic

from speakup_fx.bounce import bounce
from speakup_fx.dsp.loudness import integrated_loudness_lufs

RATE = 48_000
SPEECH_S = 22.0
HEAD_S, TAIL_S = 1.0, 3.0
"""Room tone before and after the narration, as ACX asks for (0.5-1 s and 1-5 s)."""


def narration() -> np.ndarray:
    """Speech-like narration at -20 LUFS, with white noise at -45 dBFS and 50 Hz hum throughout."""
    speech = synthetic.speech_like(SPEECH_S, RATE, 1, seed=2).astype(np.float64)
    speech *= 10 ** ((-20.0 - integrated_loudness_lufs(speech, RATE)) / 20)
    speech = np.concatenate([np.zeros((1, int(HEAD_S * RATE))), speech, np.zeros((1, int(TAIL_S * RATE)))], axis=1)
    duration_s = speech.shape[-1] / RATE
    noise = synthetic.noise(duration_s, RATE, 1, level_db=-45.0, seed=5)
    hum = synthetic.hum(50.0, duration_s, RATE, 1, amplitude=0.006)
    return (speech + noise + hum).astype(np.float32)


def rms_db(audio: np.ndarray) -> float:
    return 10 * np.log10(np.mean(audio.astype(np.float64) ** 2))


def noise_floor_db(audio: np.ndarray, window_s: float = 0.5) -> float:
    """RMS (dBFS) of the quietest ``window_s`` window, stepped by 10 ms, as ACX Check measures it."""
    power = np.mean(audio.astype(np.float64) ** 2, axis=0)
    sums = np.concatenate([[0.0], np.cumsum(power)])
    width, starts = int(window_s * RATE), np.arange(0, power.size - int(window_s * RATE) + 1, RATE // 100)
    return 10 * np.log10(np.min(sums[starts + width] - sums[starts]) / width)


def pause_noise_db(audio: np.ndarray) -> float:
    """RMS (dBFS) of the loudest middle 35 ms of the narration's own pauses (speech_like's 0.74 s gaps)."""
    t = np.arange(audio.shape[-1]) / RATE - HEAD_S
    middles = (np.sin(2 * np.pi * 0.4 * t) < -0.999) & (t > 1.0) & (t < SPEECH_S - 0.5)
    pause_index = np.floor(t * 0.4).astype(int)
    return max(rms_db(audio[:, middles & (pause_index == k)]) for k in np.unique(pause_index[middles]))


@pytest.fixture(scope="module")
def bounced(tmp_path_factory):
    folder = tmp_path_factory.mktemp("acx")
    source = folder / "chapter.wav"
    soundfile.write(source, narration().T, RATE, subtype="PCM_24")

    def run(**overrides: object) -> np.ndarray:
        output = folder / f"out-{len(list(folder.iterdir()))}.wav"
        bounce(source, output, preset="audiobook-acx", overrides=overrides, bit_depth="24")
        return soundfile.read(output, always_2d=True, dtype="float32")[0].T

    return run


def test_the_input_fails_the_noise_floor():
    audio = narration()
    assert noise_floor_db(audio) > -45.0


def test_audiobook_acx_output_meets_rms_peak_and_noise_floor(bounced):
    out = bounced()
    assert -23.0 <= rms_db(out) <= -18.0
    assert 20 * np.log10(np.abs(out).max()) <= -3.0
    assert noise_floor_db(out) <= -60.0
    assert pause_noise_db(out) <= -60.0  # the pauses between words too, not only the room tone


def test_the_expander_is_what_brings_the_pauses_between_words_below_minus_60_db(bounced):
    out = bounced(expander=False)
    assert -23.0 <= rms_db(out) <= -18.0
    assert pause_noise_db(out) > -60.0
