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


@lru_cache(maxsize=64)
def sine(frequency_hz: float, duration_s: float, sample_rate: int, channels: int = 1, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    x = (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
    out = _fade(np.tile(x, (channels, 1)), sample_rate)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def chirp(start_hz: float, stop_hz: float, duration_s: float, sample_rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    k = (stop_hz - start_hz) / duration_s
    x = (0.5 * np.sin(2 * np.pi * (start_hz * t + 0.5 * k * t**2))).astype(np.float32)
    out = _fade(np.tile(x, (channels, 1)), sample_rate)
    out.setflags(write=False)
    return out


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
    voice = sum(np.sin(k * phase) / k for k in range(1, 30) if k * 200 < sample_rate / 2)
    syllables = np.clip(np.sin(2 * np.pi * 3.5 * t + rng.uniform(0, 6)), 0, None) ** 2
    pauses = (np.sin(2 * np.pi * 0.4 * t) > -0.6).astype(float)
    x = (0.3 * voice * syllables * pauses / 3).astype(np.float32)
    out = _fade(np.tile(x, (channels, 1)), sample_rate)
    out.setflags(write=False)
    return out


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
