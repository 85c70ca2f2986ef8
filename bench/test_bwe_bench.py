"""Bandwidth extension speed next to DeepFilterNet3 on the same audio, in the same session.

The BWE stage alone (48 kHz in and out, as the classic chain and the ``bandwidth-extension`` preset
run it) and the full neural chain with it (48 kHz stereo: enhancer + bandwidth extension + DSP), fed
``AUDIO_S`` of noisy speech in blocks of 10 hops, torch on one thread, with the shipped weights.
Run: ``pytest bench/test_bwe_bench.py --benchmark-enable -s``.
"""

from __future__ import annotations

import statistics

import pytest
from reference import AUDIO_S, ROUNDS, noisy_speech_material
from test_runtime_bench import HOPS_PER_BLOCK, SAMPLE_RATE, one_thread_host, stage_seconds  # noqa: F401 (a fixture)


TARGET_RATIO = 0.5
"""The stage's time over DFN3's on the same audio (the issue's bound)."""


def median_rtf(benchmark, stages, audio) -> tuple[float, dict[str, float]]:
    """Median total and per-stage RTF over ``ROUNDS`` rounds after a warm-up."""
    rounds = [stage_seconds(stages, audio) for _ in range(ROUNDS + 1)][1:]
    benchmark.pedantic(stage_seconds, args=(stages, audio), rounds=1, iterations=1)
    per_stage = {name: statistics.median(r[name] for r in rounds) / AUDIO_S for name in rounds[0]}
    return statistics.median(sum(r.values()) for r in rounds) / AUDIO_S, per_stage


@pytest.mark.parametrize("channels", [1, 2])
def test_bwe_stage_real_time_factor(benchmark, dfn3_reference, one_thread_host, channels):
    from speakup_fx.stages.bandwidth import BandwidthExtensionStage

    stage = BandwidthExtensionStage(channels, one_thread_host())
    stage.prepare()
    rtf, _ = median_rtf(benchmark, [stage], noisy_speech_material(SAMPLE_RATE, channels))
    reference = dfn3_reference(SAMPLE_RATE, channels)
    benchmark.extra_info.update(channels=channels, rtf=rtf, hops_per_block=HOPS_PER_BLOCK, **reference.extra_info(rtf))
    print(f"\nbandwidth-extension stage, {SAMPLE_RATE} Hz, {channels} ch: RTF {rtf:.4f}, {reference.describe(rtf)}")
    assert reference.ratio(rtf) <= TARGET_RATIO


def test_full_chain_with_bwe_real_time_factor(benchmark, dfn3_reference, one_thread_host):
    from speakup_fx.dsp.resample import resample
    from speakup_fx.params import ChainOptions, default_params
    from speakup_fx.stages.chain import build_chain

    stages = build_chain(2, ChainOptions(engine="neural", bandwidth_extension=True), default_params(), one_thread_host())
    for stage in stages:
        stage.prepare()
    # the chain enters at the enhancer's 16 kHz, as the engine feeds it
    entry = resample(noisy_speech_material(SAMPLE_RATE, 2), SAMPLE_RATE, stages[0].input_sample_rate)
    total, per_stage = median_rtf(benchmark, stages, entry)
    reference = dfn3_reference(SAMPLE_RATE, 2)
    benchmark.extra_info.update(stage_rtfs=per_stage, rtf=total, **reference.extra_info(total))
    print(f"\nneural chain + bandwidth extension, {SAMPLE_RATE} Hz stereo: RTF {total:.4f}, {reference.describe(total)}")
    for name, rtf in per_stage.items():
        print(f"  {name:<28} RTF {rtf:.4f}  ({reference.ratio(rtf):.3f} x DFN3)")
    assert total < 1.0
