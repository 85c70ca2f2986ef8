"""Bandwidth extension speed next to DeepFilterNet3 on the same audio, in the same session.

The BWE stage alone (48 kHz in and out, as the classic chain and the ``bandwidth-extension`` preset
run it) and the full neural chain with it (48 kHz stereo: enhancer + bandwidth extension + DSP), fed
``AUDIO_S`` of noisy speech in blocks of 10 hops, torch on one thread, with the shipped weights; each round
timed just after a DFN3 round on the same material (``reference.rounds_beside_dfn3``): the stage is held to
``TARGET_RATIO`` times DFN3 and the chain to ``PRODUCT_RATIO_TARGET`` (medians of the rounds' paired ratios).
Run: ``pytest bench/test_bwe_bench.py --benchmark-enable -s``.
"""

from __future__ import annotations

import pytest
from reference import PRODUCT_RATIO_TARGET
from test_runtime_bench import (  # noqa: F401 (one_thread_host is a fixture)
    HOPS_PER_BLOCK,
    SAMPLE_RATE,
    entry_material,
    one_thread_host,
    report_stages,
    time_stages_beside_dfn3,
)

TARGET_RATIO = 0.5
"""The stage's time over DFN3's on the same audio (the issue's bound)."""


@pytest.mark.parametrize("channels", [1, 2])
def test_bwe_stage_real_time_factor(benchmark, one_thread_host, channels):
    from speakup_fx.stages.bandwidth import BandwidthExtensionStage

    stage = BandwidthExtensionStage(channels, one_thread_host())
    stage.prepare()
    rtf, ratio, _, reference = time_stages_beside_dfn3(benchmark, [stage], entry_material([stage], channels), channels)
    benchmark.extra_info.update(
        channels=channels, rtf=rtf, hops_per_block=HOPS_PER_BLOCK, paired_ratio_to_dfn3=ratio, **reference.extra_info(rtf)
    )
    print(f"\nbandwidth-extension stage, {SAMPLE_RATE} Hz, {channels} ch: RTF {rtf:.4f}, "
          f"{ratio:.3f} x DFN3 paired by round ({reference.describe(rtf)})")
    assert ratio <= TARGET_RATIO


def test_full_chain_with_bwe_real_time_factor(benchmark, one_thread_host):
    from speakup_fx.params import ChainOptions, default_params
    from speakup_fx.stages.chain import build_chain

    stages = build_chain(2, ChainOptions(engine="neural", bandwidth_extension=True), default_params(), one_thread_host())
    for stage in stages:
        stage.prepare()
    total, ratio, per_stage, reference = time_stages_beside_dfn3(benchmark, stages, entry_material(stages, 2), 2)
    benchmark.extra_info.update(stage_rtfs=per_stage, rtf=total, paired_ratio_to_dfn3=ratio, **reference.extra_info(total))
    report_stages(f"neural chain + bandwidth extension, {SAMPLE_RATE} Hz stereo", total, ratio, per_stage, reference)
    assert ratio <= PRODUCT_RATIO_TARGET
