"""Real-time factor of the full classic DSP chain at 48 kHz stereo.

The chain (highpass, dehum, denoise, eq, leveler, compressor, gain, limiter, default
parameters) processes 10 s of noisy stereo speech with 50 Hz hum (so de-hum is active)
in blocks of 10 hops (100 ms). Thread counts of numpy's BLAS/OpenMP can only be set
before numpy loads, so each thread count is measured in a fresh subprocess (this file run
as a script); pytest-benchmark also times the chain in this process with torch's intra-op
threads set to the same count. Run with ``pytest bench/ --benchmark-enable -s``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

AUDIO_S = 10.0
ROUNDS = 5
HOPS_PER_BLOCK = 10
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def build_chain():
    """The classic chain's stages, stereo, default parameters."""
    from speakup_fx.params import default_params
    from speakup_fx.stages.compressor import CompressorStage
    from speakup_fx.stages.dehum import DehumStage
    from speakup_fx.stages.denoise import SpectralDenoiseStage
    from speakup_fx.stages.eq import EqStage
    from speakup_fx.stages.gain import GainStage
    from speakup_fx.stages.highpass import HighpassStage
    from speakup_fx.stages.leveler import LevelerStage
    from speakup_fx.stages.limiter import TruePeakLimiterStage

    params = default_params()
    kinds = (
        HighpassStage, DehumStage, SpectralDenoiseStage, EqStage, LevelerStage, CompressorStage, GainStage, TruePeakLimiterStage
    )
    return [kind(2, params) for kind in kinds]


def material():
    """10 s of 48 kHz stereo noisy speech (white noise at 10 dB SNR, 50 Hz hum), float32."""
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import synthetic

    left = synthetic.noisy_speech(AUDIO_S, 48_000, 1, seed=0)
    right = synthetic.noisy_speech(AUDIO_S, 48_000, 1, seed=1)
    return np.concatenate([left, right]).astype(np.float32)


def run_chain(chain, audio) -> None:
    """Push ``audio`` through ``chain`` block by block (after resetting every stage)."""
    for stage in chain:
        stage.reset()
    size = HOPS_PER_BLOCK * 480
    for start in range(0, audio.shape[-1], size):
        block = audio[:, start : start + size]
        for stage in chain:
            block = stage.process(block)


def time_rounds(rounds: int) -> list[float]:
    """Seconds per round of processing ``AUDIO_S`` seconds, after one warm-up round."""
    chain, audio = build_chain(), material()
    run_chain(chain, audio)
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        run_chain(chain, audio)
        seconds.append(time.perf_counter() - start)
    return seconds


def subprocess_rtf(threads: int) -> float:
    """Median real-time factor measured in a fresh interpreter with ``threads`` BLAS/OpenMP/torch threads."""
    env = {**os.environ, **{name: str(threads) for name in THREAD_VARIABLES}}
    result = subprocess.run(
        [sys.executable, __file__, "--threads", str(threads), "--rounds", str(ROUNDS)],
        env=env, capture_output=True, text=True, check=True,
    )
    return statistics.median(json.loads(result.stdout.strip().splitlines()[-1])) / AUDIO_S


def _set_torch_threads(threads: int) -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


@pytest.mark.parametrize("threads", [1, 2])
def test_classic_chain_runs_faster_than_real_time(benchmark, threads):
    rtf = subprocess_rtf(threads)
    _set_torch_threads(threads)
    chain, audio = build_chain(), material()
    benchmark.extra_info.update({"threads": threads, "audio_s": AUDIO_S, "subprocess_median_rtf": rtf})
    benchmark.pedantic(run_chain, args=(chain, audio), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    in_process = benchmark.stats.stats.median / AUDIO_S if benchmark.stats else float("nan")
    print(f"\nclassic chain, 48 kHz stereo, {threads} thread(s): real-time factor {rtf:.4f} (subprocess median of {ROUNDS}), "
          f"{in_process:.4f} (pytest-benchmark median)")
    assert rtf < 1.0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    _set_torch_threads(args.threads)
    print(json.dumps(time_rounds(args.rounds)))
