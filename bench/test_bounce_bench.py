"""Benchmark: ``speakup bounce`` of a 1-hour 48 kHz file — peak memory of the child process and real-time factor.

Memory must not grow with the file: the peak RSS is held to ``PEAK_RSS_GROWTH`` times that of bouncing the
file's first minute, measured in the same run.
The real-time factor is held to ``BOUNCE_RATIO_TARGET`` times DFN3's on 48 kHz mono noisy speech, measured
just before and just after the bounce (the median of both sets of rounds, ``reference.py``).
Run: ``pytest bench/test_bounce_bench.py --benchmark-enable -s`` (about RTF x 1 hour).
``SPEAKUP_BENCH_BOUNCE_S`` shortens the file for a quick check; ``SPEAKUP_BENCH_PRESET``
picks the preset (default podcast: classic engine with the loudness pass).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile
from reference import Reference, measure_dfn3

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic import noisy_speech  # noqa: E402

SAMPLE_RATE = 48_000
DURATION_S = int(os.environ.get("SPEAKUP_BENCH_BOUNCE_S", 3600))
PRESET = os.environ.get("SPEAKUP_BENCH_PRESET", "podcast")
BOUNCE_RATIO_TARGET = 1.5
"""The bounce's RTF over DFN3's, at most. Above the effect's own bound (``reference.PRODUCT_RATIO_TARGET``):
the bounce's wall time also holds the child's start-up, decoding and encoding, the loudness pass (a second
pass over the file: gain, true-peak limiting) and the input and output measurements, which DFN3's does not."""
PEAK_RSS_GROWTH = 1.1
"""The long bounce's peak RSS over the one-minute bounce's, at most."""
CHUNK_S = 60
CHILD_THREADS = 1


def write_long_wav(path, duration_s: int) -> int:
    """A mono 24-bit WAV of noisy speech, written a minute at a time; returns its frames."""
    chunk = noisy_speech(CHUNK_S, SAMPLE_RATE, channels=1, snr_db=15.0)
    frames = 0
    with soundfile.SoundFile(path, "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_24") as file:
        for start_s in range(0, duration_s, CHUNK_S):
            part = chunk[:, : (min(CHUNK_S, duration_s - start_s)) * SAMPLE_RATE] * np.float32(0.3)
            file.write(part.T)
            frames += part.shape[1]
    return frames


def run_child(args: list[str]) -> tuple[int, float, float, str]:
    """Run the command; return its exit code, peak RSS in MB (of that child alone), wall seconds and stderr."""
    started = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS=str(CHILD_THREADS))
    with open(os.devnull, "wb") as devnull:
        child = subprocess.Popen(args, stdout=devnull, stderr=subprocess.PIPE, env=env)
        stderr = child.stderr.read().decode()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss / 1024, time.perf_counter() - started, stderr


def bounce_args(source, output) -> list[str]:
    """The ``speakup bounce`` command line for one file with the bench's preset."""
    return [sys.executable, "-m", "speakup_fx.cli", "bounce", str(source), "-o", str(output), "--preset", PRESET]


def test_bounce_of_a_long_file_has_bounded_memory(benchmark, tmp_path):
    source, output = tmp_path / "long.wav", tmp_path / "long-enhanced.wav"
    frames = write_long_wav(source, DURATION_S)
    minute = tmp_path / "minute.wav"
    write_long_wav(minute, min(CHUNK_S, DURATION_S))
    code, minute_peak_rss_mb, _, stderr = run_child(bounce_args(minute, tmp_path / "minute-enhanced.wav"))
    assert code == 0, stderr
    before = measure_dfn3(SAMPLE_RATE, 1)
    code, peak_rss_mb, wall_s, stderr = benchmark.pedantic(
        run_child, args=(bounce_args(source, output),), rounds=1, iterations=1
    )
    after = measure_dfn3(SAMPLE_RATE, 1)
    reference = Reference(SAMPLE_RATE, 1, before.audio_s, before.round_rtfs + after.round_rtfs)
    rtf = wall_s / DURATION_S
    benchmark.extra_info.update(
        duration_s=DURATION_S,
        preset=PRESET,
        threads=CHILD_THREADS,
        peak_rss_mb=round(peak_rss_mb, 1),
        minute_peak_rss_mb=round(minute_peak_rss_mb, 1),
        realtime_factor=rtf,
        **reference.extra_info(rtf),
    )
    print(f"\nbounce {DURATION_S} s at {SAMPLE_RATE} Hz mono ({PRESET}, {CHILD_THREADS} thread): "
          f"peak RSS {peak_rss_mb:.0f} MB ({minute_peak_rss_mb:.0f} MB for its first minute), wall {wall_s:.0f} s, "
          f"RTF {rtf:.4f}, {reference.describe(rtf)}")
    assert code == 0, stderr
    assert soundfile.info(output).frames == frames
    assert peak_rss_mb <= PEAK_RSS_GROWTH * minute_peak_rss_mb
    assert reference.ratio(rtf) <= BOUNCE_RATIO_TARGET
