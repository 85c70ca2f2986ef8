"""Benchmark: ``speakup bounce`` of a 1-hour 48 kHz file — peak memory of the child process and real-time factor.

The real-time factor is also given as a ratio to DFN3's on 48 kHz mono noisy speech measured
in the same session (``reference.py``); the bounce's wall time includes the child's start-up,
reading and writing the file and the loudness pass, which DFN3's does not.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic import noisy_speech  # noqa: E402

SAMPLE_RATE = 48_000
DURATION_S = int(os.environ.get("SPEAKUP_BENCH_BOUNCE_S", 3600))
PRESET = os.environ.get("SPEAKUP_BENCH_PRESET", "podcast")
PEAK_RSS_LIMIT_MB = 500
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


def test_bounce_of_a_long_file_has_bounded_memory(benchmark, dfn3_reference, tmp_path):
    reference = dfn3_reference(SAMPLE_RATE, 1)
    source, output = tmp_path / "long.wav", tmp_path / "long-enhanced.wav"
    frames = write_long_wav(source, DURATION_S)
    args = [sys.executable, "-m", "speakup_fx.cli", "bounce", str(source), "-o", str(output), "--preset", PRESET]
    code, peak_rss_mb, wall_s, stderr = benchmark.pedantic(run_child, args=(args,), rounds=1, iterations=1)
    rtf = wall_s / DURATION_S
    benchmark.extra_info.update(
        duration_s=DURATION_S,
        preset=PRESET,
        threads=CHILD_THREADS,
        peak_rss_mb=round(peak_rss_mb, 1),
        realtime_factor=rtf,
        **reference.extra_info(rtf),
    )
    print(f"\nbounce {DURATION_S} s at {SAMPLE_RATE} Hz mono ({PRESET}, {CHILD_THREADS} thread): "
          f"peak RSS {peak_rss_mb:.0f} MB, wall {wall_s:.0f} s, RTF {rtf:.4f}, {reference.describe(rtf)}")
    assert code == 0, stderr
    assert soundfile.info(output).frames == frames
    assert peak_rss_mb < PEAK_RSS_LIMIT_MB
    assert rtf < 1.0
