"""Bandwidth extension speed next to DeepFilterNet3 on the same audio, in the same session.

The BWE stage alone (48 kHz in and out, as the classic chain and the ``bandwidth-extension`` preset
run it) and the full neural chain with it (48 kHz stereo: enhancer + bandwidth extension + DSP), fed
``AUDIO_S`` of noisy speech in blocks of 10 hops, torch on one thread. The model's speed does not
depend on its weights, so until trained weights ship the default-size model runs with fresh ones.
Run: ``pytest bench/test_bwe_bench.py --benchmark-enable -s``.
"""

from __future__ import annotations

import shutil
import statistics

import pytest
from reference import AUDIO_S, ROUNDS, noisy_speech_material
from test_runtime_bench import HOPS_PER_BLOCK, SAMPLE_RATE, one_thread_host, stage_seconds  # noqa: F401 (a fixture)


TARGET_RATIO = 0.5
"""The stage's time over DFN3's on the same audio (the issue's bound)."""


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """The shipped weights, with a default-size bandwidth extender when none ships yet."""
    import torch

    from speakup_fx.models.bwe import BandwidthExtender
    from speakup_fx.runtime import weights as weights_module

    for kind in ("enhancer", "bandwidth_extension"):
        shipped = weights_module.default_weights(kind)
        if shipped.is_file():
            shutil.copy(shipped, tmp_path / shipped.name)
    if not (tmp_path / "bandwidth_extension.safetensors").is_file():
        torch.manual_seed(0)
        weights_module.save_weights(BandwidthExtender(), tmp_path / "bandwidth_extension.safetensors")
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    return tmp_path


def median_rtf(benchmark, stages, audio) -> tuple[float, dict[str, float]]:
    """Median total and per-stage RTF over ``ROUNDS`` rounds after a warm-up."""
    rounds = [stage_seconds(stages, audio) for _ in range(ROUNDS + 1)][1:]
    benchmark.pedantic(stage_seconds, args=(stages, audio), rounds=1, iterations=1)
    per_stage = {name: statistics.median(r[name] for r in rounds) / AUDIO_S for name in rounds[0]}
    return statistics.median(sum(r.values()) for r in rounds) / AUDIO_S, per_stage


@pytest.mark.parametrize("channels", [1, 2])
def test_bwe_stage_real_time_factor(benchmark, dfn3_reference, one_thread_host, weights_dir, channels):
    from speakup_fx.stages.bandwidth import BandwidthExtensionStage

    stage = BandwidthExtensionStage(channels, one_thread_host())
    stage.prepare()
    rtf, _ = median_rtf(benchmark, [stage], noisy_speech_material(SAMPLE_RATE, channels))
    reference = dfn3_reference(SAMPLE_RATE, channels)
    benchmark.extra_info.update(channels=channels, rtf=rtf, hops_per_block=HOPS_PER_BLOCK, **reference.extra_info(rtf))
    print(f"\nbandwidth-extension stage, {SAMPLE_RATE} Hz, {channels} ch: RTF {rtf:.4f}, {reference.describe(rtf)}")
    assert reference.ratio(rtf) <= TARGET_RATIO


def test_full_chain_with_bwe_real_time_factor(benchmark, dfn3_reference, one_thread_host, weights_dir):
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
