"""Per-stage real-time factors of the classic and neural chains, and what batching streams buys ``ModelHost``.

Torch runs on one thread (``ModelHost(num_threads=1)``, restored afterwards), as the model server and
the tests run it. Per stage: the chain's stages (48 kHz stereo, default parameters, every optional stage on) are fed
``AUDIO_S`` of noisy speech at the chain's entry rate (the neural chain's is the enhancer's 16 kHz) in blocks of
10 hops; each stage's own time is summed over the run, median of ``ROUNDS`` rounds, each round timed just after
a DFN3 round on the same material (``reference.rounds_beside_dfn3``).
The whole chain is held to ``PRODUCT_RATIO_TARGET`` times DFN3 (the median of the rounds' paired ratios).

Batching: N mono streams of the shipped enhancer stepped one hop (10 ms) at a time, as the model
server steps its slots: one ``process_batch`` of N against N single steps. Reported per stream-hop
and as the batch's speed-up; on the CPU and, when CUDA is available, on the GPU.
Run: ``pytest bench/test_runtime_bench.py --benchmark-enable -s``.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

import numpy as np
import pytest
from reference import AUDIO_S, PRODUCT_RATIO_TARGET, ROUNDS, Reference, noisy_speech_material, rounds_beside_dfn3

SAMPLE_RATE = 48_000
CHANNELS = 2
HOPS_PER_BLOCK = 10
BATCH_HOPS = 100


@pytest.fixture
def one_thread_host():
    """``make(device) -> ModelHost`` with torch on one thread; the thread count is restored afterwards."""
    import torch

    from speakup_fx.runtime.host import ModelHost

    before = torch.get_num_threads()
    yield lambda device="cpu": ModelHost(device, num_threads=1)
    torch.set_num_threads(before)


def stage_seconds(stages, audio) -> dict[str, float]:
    """Seconds each stage spends on ``audio`` (at the first stage's rate) fed in blocks of ``HOPS_PER_BLOCK`` hops.

    The stages are reset first.
    """
    from speakup_fx.stages.base import hop_frames

    for stage in stages:
        stage.reset()
    spent: dict[str, float] = defaultdict(float)
    size = HOPS_PER_BLOCK * hop_frames(stages[0].input_sample_rate)
    for start in range(0, audio.shape[1], size):
        block = audio[:, start : start + size]
        for index, stage in enumerate(stages):
            began = time.perf_counter()
            block = stage.process(block)
            spent[f"{index}:{type(stage).__name__}"] += time.perf_counter() - began
    return spent


def entry_material(stages, channels: int) -> np.ndarray:
    """``AUDIO_S`` of noisy speech at the first stage's rate (the neural chain enters at the enhancer's 16 kHz, as the
    engine feeds it), resampled from ``SAMPLE_RATE`` material."""
    from speakup_fx.dsp.resample import resample

    return resample(noisy_speech_material(SAMPLE_RATE, channels), SAMPLE_RATE, stages[0].input_sample_rate)


def time_stages_beside_dfn3(
    benchmark, stages, audio, channels: int
) -> tuple[float, float, dict[str, float], Reference]:
    """Time ``stages`` on ``audio`` (``AUDIO_S`` s at the first stage's rate, ``entry_material``) beside DFN3 on
    ``SAMPLE_RATE`` material of ``channels`` channels; returns the median total RTF, its paired ratio to DFN3,
    each stage's median RTF and the reference. pytest-benchmark records one more round for its table."""
    rounds, reference = rounds_beside_dfn3(lambda: stage_seconds(stages, audio), SAMPLE_RATE, channels)
    benchmark.pedantic(stage_seconds, args=(stages, audio), rounds=1, iterations=1)
    totals = [sum(r.values()) / AUDIO_S for r in rounds]
    per_stage = {name: statistics.median(r[name] for r in rounds) / AUDIO_S for name in rounds[0]}
    return statistics.median(totals), reference.paired_ratio(totals), per_stage, reference


def report_stages(title: str, total: float, ratio: float, per_stage: dict[str, float], reference: Reference) -> None:
    """Print the chain's total and per-stage RTFs with their ratios to DFN3."""
    print(f"\n{title}: total RTF {total:.4f}, {ratio:.3f} x DFN3 paired by round ({reference.describe(total)})")
    for name, rtf in per_stage.items():
        print(f"  {name:<28} RTF {rtf:.4f}  ({reference.ratio(rtf):.3f} x DFN3)")


@pytest.mark.parametrize("engine", ["classic", "neural"])
def test_per_stage_real_time_factors(benchmark, one_thread_host, engine):
    from speakup_fx.params import ChainOptions, default_params
    from speakup_fx.stages.chain import build_chain

    stages = build_chain(CHANNELS, ChainOptions(engine=engine, expander=True), default_params(), one_thread_host())
    for stage in stages:
        stage.prepare()
    total, ratio, rtfs, reference = time_stages_beside_dfn3(benchmark, stages, entry_material(stages, CHANNELS), CHANNELS)
    benchmark.extra_info.update(
        engine=engine, stage_rtfs=rtfs, rtf=total, paired_ratio_to_dfn3=ratio, **reference.extra_info(total)
    )
    report_stages(f"{engine} chain, {SAMPLE_RATE} Hz stereo", total, ratio, rtfs, reference)
    assert ratio <= PRODUCT_RATIO_TARGET


def devices() -> list[str]:
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", devices())
def test_batching_streams_costs_less_than_stepping_them_alone(benchmark, one_thread_host, device):
    host = one_thread_host(device)
    hop = host.describe("enhancer").hop_samples
    rng = np.random.default_rng(0)
    lines = []
    per_stream_hop_s = {}
    for count in (1, 2, 4, 8):
        streams = [host.stream("enhancer", 1) for _ in range(count)]
        blocks = [(0.1 * rng.standard_normal((1, hop))).astype(np.float32) for _ in range(count)]

        def batched():
            for _ in range(BATCH_HOPS):
                host.process_batch(list(zip(streams, blocks)))

        def alone():
            for _ in range(BATCH_HOPS):
                for stream, block in zip(streams, blocks):
                    stream.process(block)

        batched(), alone()  # warm-up
        batch_s = statistics.median(timed(batched) for _ in range(ROUNDS)) / (BATCH_HOPS * count)
        alone_s = statistics.median(timed(alone) for _ in range(ROUNDS)) / (BATCH_HOPS * count)
        per_stream_hop_s[count] = batch_s
        lines.append(f"  {count} stream(s): batched {batch_s * 1e3:.3f} ms per stream-hop, alone {alone_s * 1e3:.3f} ms, "
                     f"speed-up {alone_s / batch_s:.2f}x; a 10 ms hop of {count} streams takes {batch_s * count * 1e3:.2f} ms")
    benchmark.pedantic(lambda: None, rounds=1)
    benchmark.extra_info.update(device=device, per_stream_hop_s=per_stream_hop_s)
    print(f"\nModelHost({device!r}) enhancer, one 10 ms hop per step:\n" + "\n".join(lines))
    assert per_stream_hop_s[8] <= per_stream_hop_s[1] * 1.5  # a batch never costs much more per stream than one alone


def timed(run) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began
