"""Real-time factor of the classic DSP chain and of the whole podcast effect, each also as a ratio to DFN3.

Chain: ``speakup_fx.stages.chain.build_chain`` with the default ``ChainOptions`` (classic engine)
and default parameters, stereo, fed 10 s of 48 kHz noisy speech with 50 Hz hum (so de-hum
works) in blocks of 10 hops (100 ms). numpy's BLAS/OpenMP thread counts can only be set
before numpy loads, so each thread count is measured in a fresh interpreter (this file run
as a script: ``ROUNDS`` rounds after a warm-up, each just after a DFN3 round on the same
material, ``reference.rounds_beside_dfn3``); pytest-benchmark also times the chain in this
process, with this process's own thread settings.

Effect: ``SpeakUp(preset="podcast")`` called like a pedalboard plugin on 10 s of 44.1 kHz
stereo, so resampling to 48 kHz and back and the re-blocking into hops are included.

Each is held to ``PRODUCT_RATIO_TARGET`` times DFN3 on the same kind of audio: the median over rounds of
each round's RTF over that of the DFN3 round timed just before it (``reference.py``; DFN3 is
single-threaded whatever the thread settings).
Run: ``pytest bench/test_dsp_chain_bench.py --benchmark-enable -s``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import pytest
from reference import (
    AUDIO_S,
    PRODUCT_RATIO_TARGET,
    ROUNDS,
    Reference,
    noisy_speech_material,
    rounds_beside_dfn3,
    time_beside_dfn3,
    time_rounds,
)

CHAIN_SAMPLE_RATE = 48_000
EFFECT_SAMPLE_RATE = 44_100
CHANNELS = 2
HOPS_PER_BLOCK = 10
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def classic_chain():
    """The default classic chain's stages, stereo, default parameters."""
    from speakup_fx.stages.chain import build_chain
    from speakup_fx.params import ChainOptions, default_params

    return build_chain(CHANNELS, ChainOptions(engine="classic"), default_params())


def run_chain(chain, audio) -> None:
    """Push ``audio`` through ``chain`` block by block (after resetting every stage)."""
    for stage in chain:
        stage.reset()
    size = HOPS_PER_BLOCK * CHAIN_SAMPLE_RATE // 100
    for start in range(0, audio.shape[-1], size):
        block = audio[:, start : start + size]
        for stage in chain:
            block = stage.process(block)


def subprocess_rounds(threads: int) -> tuple[list[float], Reference]:
    """Real-time factor of each round, measured in a fresh interpreter with ``threads`` BLAS/OpenMP threads,
    and the DFN3 rounds timed there just before them."""
    env = {**os.environ, **{name: str(threads) for name in THREAD_VARIABLES}}
    result = subprocess.run(
        [sys.executable, __file__, "--rounds", str(ROUNDS)], env=env, capture_output=True, text=True, check=True
    )
    rounds = json.loads(result.stdout.strip().splitlines()[-1])
    reference = Reference(CHAIN_SAMPLE_RATE, CHANNELS, AUDIO_S, tuple(rounds["dfn3_rtfs"]))
    return [seconds / AUDIO_S for seconds in rounds["chain_s"]], reference


@pytest.mark.parametrize("threads", [1, 2])
def test_classic_chain_costs_no_more_than_dfn3(benchmark, threads):
    round_rtfs, reference = subprocess_rounds(threads)
    rtf, ratio = statistics.median(round_rtfs), reference.paired_ratio(round_rtfs)
    chain, audio = classic_chain(), noisy_speech_material(CHAIN_SAMPLE_RATE, CHANNELS)
    benchmark.pedantic(run_chain, args=(chain, audio), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        threads=threads,
        sample_rate=CHAIN_SAMPLE_RATE,
        channels=CHANNELS,
        audio_s=AUDIO_S,
        stages=[type(stage).__name__ for stage in chain],
        rtf=rtf,
        round_rtfs=round_rtfs,
        paired_ratio_to_dfn3=ratio,
        **reference.extra_info(rtf),
    )
    in_process = ""
    if benchmark.enabled:
        in_process_rtf = benchmark.stats.stats.median / AUDIO_S
        benchmark.extra_info["in_process_rtf"] = in_process_rtf
        benchmark.extra_info["in_process_omp_num_threads"] = os.environ.get("OMP_NUM_THREADS", "unset")
        in_process = f"; in-process (pytest-benchmark median) {in_process_rtf:.4f}"
    print(f"\nclassic chain, {CHAIN_SAMPLE_RATE} Hz stereo, {threads} thread(s): RTF {rtf:.4f} "
          f"(median of {ROUNDS}), {ratio:.3f} x DFN3 paired by round ({reference.describe(rtf)}){in_process}")
    assert ratio <= PRODUCT_RATIO_TARGET


@pytest.mark.parametrize("buffer_size", [512, 8192])
def test_podcast_effect_at_44k1_costs_no_more_than_dfn3(benchmark, buffer_size):
    from speakup_fx.effect import SpeakUp

    effect, audio = SpeakUp(preset="podcast"), noisy_speech_material(EFFECT_SAMPLE_RATE, CHANNELS)
    assert effect(audio, EFFECT_SAMPLE_RATE, buffer_size=buffer_size).shape == audio.shape
    round_rtfs, reference = time_beside_dfn3(
        benchmark, lambda: effect(audio, EFFECT_SAMPLE_RATE, buffer_size=buffer_size), EFFECT_SAMPLE_RATE, CHANNELS
    )
    rtf, ratio = statistics.median(round_rtfs), reference.paired_ratio(round_rtfs)
    benchmark.extra_info.update(
        preset="podcast",
        sample_rate=EFFECT_SAMPLE_RATE,
        channels=CHANNELS,
        buffer_size=buffer_size,
        audio_s=AUDIO_S,
        omp_num_threads=os.environ.get("OMP_NUM_THREADS", "unset"),
        rtf=rtf,
        paired_ratio_to_dfn3=ratio,
        **reference.extra_info(rtf),
    )
    print(f"\nSpeakUp(preset='podcast'), {EFFECT_SAMPLE_RATE} Hz stereo, buffer_size {buffer_size}: "
          f"RTF {rtf:.4f} (median of {ROUNDS}), {ratio:.3f} x DFN3 paired by round ({reference.describe(rtf)})")
    assert ratio <= PRODUCT_RATIO_TARGET


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="Print, as JSON, the seconds of each round of the classic chain and the RTF of the DFN3 round before it."
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    chain, audio = classic_chain(), noisy_speech_material(CHAIN_SAMPLE_RATE, CHANNELS)
    chain_s, reference = rounds_beside_dfn3(
        lambda: time_rounds(lambda: run_chain(chain, audio), rounds=1, warmup_rounds=0)[0],
        CHAIN_SAMPLE_RATE, CHANNELS, args.rounds,
    )
    print(json.dumps({"chain_s": chain_s, "dfn3_rtfs": reference.round_rtfs}))
