"""Synthetic test signals, cached, float32 ``(channels, frames)``; all seeded."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def _fade(x: np.ndarray, sample_rate: int, fade_s: float = 0.01) -> np.ndarray:
    n = min(int(fade_s * sample_rate), x.shape[-1] // 2)
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    x = x.copy()
    x[..., :n] *= ramp
    x[..., x.shape[-1] - n :] *= ramp[::-1]
    return x


def _frozen(x: np.ndarray, channels: int, sample_rate: int | None = None) -> np.ndarray:
    """``x`` (1-D) copied to ``channels`` rows, faded in/out when ``sample_rate`` is given, read-only (cached)."""
    out = np.tile(x.astype(np.float32), (channels, 1))
    if sample_rate is not None:
        out = _fade(out, sample_rate)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def sine(frequency_hz: float, duration_s: float, sample_rate: int, channels: int = 1, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    x = (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
    return _frozen(x, channels, sample_rate)


@lru_cache(maxsize=64)
def chirp(start_hz: float, stop_hz: float, duration_s: float, sample_rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    k = (stop_hz - start_hz) / duration_s
    x = (0.5 * np.sin(2 * np.pi * (start_hz * t + 0.5 * k * t**2))).astype(np.float32)
    return _frozen(x, channels, sample_rate)


@lru_cache(maxsize=64)
def noise(duration_s: float, sample_rate: int, channels: int = 1, level_db: float = -30.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = (rng.standard_normal((channels, int(duration_s * sample_rate))) * 10 ** (level_db / 20)).astype(np.float32)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def speech_like(duration_s: float, sample_rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Harmonic 'voice' with a wandering pitch, syllable envelope and pauses (no recordings needed)."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t) + 10 * np.sin(2 * np.pi * 2.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    harmonic_phases = rng.uniform(0, 2 * np.pi, 30)  # random phases: a realistic crest factor
    voice = sum(np.sin(k * phase + harmonic_phases[k]) / k for k in range(1, 30) if k * 200 < sample_rate / 2)
    syllables = np.clip(np.sin(2 * np.pi * 3.5 * t + rng.uniform(0, 6)), 0, None) ** 2
    pauses = (np.sin(2 * np.pi * 0.4 * t) > -0.6).astype(float)
    x = (0.3 * voice * syllables * pauses / 3).astype(np.float32)
    return _frozen(x, channels, sample_rate)


def noisy_speech(duration_s: float, sample_rate: int, channels: int = 1, snr_db: float = 10.0, seed: int = 0) -> np.ndarray:
    """``speech_like`` plus white noise at ``snr_db`` and a 50 Hz hum."""
    clean = speech_like(duration_s, sample_rate, channels, seed)
    rng = np.random.default_rng(seed + 1)
    n = rng.standard_normal(clean.shape).astype(np.float32)
    n *= np.sqrt(np.mean(clean**2) / np.mean(n**2) / 10 ** (snr_db / 10))
    t = np.arange(clean.shape[-1]) / sample_rate
    hum = (0.02 * np.sin(2 * np.pi * 50 * t)).astype(np.float32)
    return (clean + n + hum).astype(np.float32)


def impulse(duration_s: float, sample_rate: int, channels: int = 1, at_s: float = 0.1) -> np.ndarray:
    x = np.zeros((channels, int(duration_s * sample_rate)), np.float32)
    x[:, int(at_s * sample_rate)] = 1.0
    return x


def silence(duration_s: float, sample_rate: int, channels: int = 1) -> np.ndarray:
    return np.zeros((channels, int(duration_s * sample_rate)), np.float32)


def write_tiny_corpus(folder, sample_rate: int = 16_000) -> None:
    """A data folder in the shared layout (``manifest.csv`` + FLAC): 4 speech clips, 2 noises, 1 room response."""
    import csv
    from pathlib import Path

    import soundfile as sf

    folder = Path(folder)
    rows = []

    def write(kind: str, name: str, audio: np.ndarray) -> None:
        path = folder / kind / f"{name}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, audio, sample_rate, subtype="PCM_16")
        rows.append({"split": "train", "kind": kind, "source": "synthetic", "path": f"{kind}/{name}.flac",
                     "duration_s": len(audio) / sample_rate, "sample_rate": sample_rate, "licence": "CC0"})

    for seed in range(4):
        write("speech", f"speech{seed}", speech_like(1.5, sample_rate, seed=seed)[0])
    for seed in range(2):
        write("noise", f"noise{seed}", noise(1.0, sample_rate, level_db=-20.0, seed=10 + seed)[0])
    rng = np.random.default_rng(0)
    t = np.arange(int(0.3 * sample_rate)) / sample_rate
    rir = (0.2 * rng.standard_normal(len(t)) * np.exp(-6.9 * t / 0.3)).astype(np.float32)
    rir[0] = 0.9
    write("rir", "room", rir)
    with (folder / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@lru_cache(maxsize=16)
def hum(mains_hz: float, duration_s: float, sample_rate: int, channels: int = 1, amplitude: float = 0.05, harmonics: int = 6) -> np.ndarray:
    """Mains hum: ``mains_hz`` and its harmonics, each 3 dB below the one before."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    x = sum(amplitude * 10 ** (-3 * k / 20) * np.sin(2 * np.pi * mains_hz * (k + 1) * t + k) for k in range(harmonics))
    return _frozen(x, channels)


@lru_cache(maxsize=16)
def clipped_sine(frequency_hz: float, duration_s: float, sample_rate: int, channels: int = 1, drive: float = 3.0) -> np.ndarray:
    """A sine driven ``drive`` times past full scale and hard-clipped at +-1 (inter-sample peaks above 0 dBTP)."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    x = np.clip(drive * np.sin(2 * np.pi * frequency_hz * t + 0.3), -1.0, 1.0).astype(np.float32)
    return _frozen(x, channels)


@lru_cache(maxsize=16)
def noise_bursts(duration_s: float, sample_rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Full-scale clipped white-noise bursts (50-300 ms) separated by silence."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * sample_rate)
    out = np.zeros((channels, n), np.float32)
    start = 0
    while True:
        start += int(rng.uniform(0.05, 0.3) * sample_rate)
        length = int(rng.uniform(0.05, 0.3) * sample_rate)
        if start + length > n:
            break
        out[:, start : start + length] = np.clip(rng.standard_normal((channels, length)) * 0.8, -1.0, 1.0)
        start += length
    out.setflags(write=False)
    return out


@lru_cache(maxsize=8)
def room_impulse_response(rt60_s: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Synthetic room response ``(frames,)`` float64: a unit direct path and an exponentially decaying noise tail
    (from 3 ms, as energetic as the direct path)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(1.5 * rt60_s * sample_rate)) / sample_rate
    tail = rng.standard_normal(t.size) * np.exp(-3 * np.log(10) * t / rt60_s)
    tail[: int(0.003 * sample_rate)] = 0.0
    response = tail / np.sqrt(np.sum(tail**2))
    response[0] += 1.0
    response.setflags(write=False)
    return response


def write_tiny_actors(folder, actors=(1, 2, 21, 22), files: int = 2, duration_s: float = 0.6):
    """A RAVDESS-like ``actorNN/clipI.flac`` folder of 48 kHz noisy speech-like audio; returns ``folder``."""
    import soundfile as sf

    for actor in actors:
        (folder / f"actor{actor:02d}").mkdir(parents=True)
        for i in range(files):
            audio = noisy_speech(duration_s, 48_000, 1, seed=10 * actor + i)[0]
            sf.write(folder / f"actor{actor:02d}" / f"clip{i}.flac", audio, 48_000)
    return folder


def write_midi(path, tracks, ticks_per_beat: int = 480, midi_type: int = 1):
    """A standard MIDI file at ``path`` from ``tracks``: lists of mido messages whose ``time`` is in ticks since the last."""
    import mido

    midi_file = mido.MidiFile(type=midi_type, ticks_per_beat=ticks_per_beat)
    for messages in tracks:
        midi_file.tracks.append(mido.MidiTrack(messages))
    midi_file.save(path)
    return path
