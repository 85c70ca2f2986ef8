"""Speed of the generators on CPU with 1 and 2 threads, as real-time factor (compute s per audio s) and as a ratio
to DeepFilterNet3 on 16 kHz mono measured in the same session.

The earlier architectures (the streaming generator, streamed in 100 ms blocks and whole-file, and the paper's
WaveNet generator) are recorded for comparison; no target applies to them.
DFNet (the two-output enhancer of issue 9, the shipped architecture) is held to RTF <= 0.25 x DFN3's per channel
(16 kHz mono), streaming hop by hop (10 ms blocks, the plugin's case) and whole-file, each round's RTF over that of a DFN3
round timed just before it (median over rounds; ``reference.time_beside_dfn3``); the shipped weights stepped hop by
hop through a ``ModelHost`` stream (what a real-time host pays on top of the model) are recorded too.
Run: ``pytest bench/test_generator_bench.py --benchmark-enable``.
"""

import statistics

import numpy as np
import pytest
import torch

from reference import AUDIO_S, require_timing, time_beside_dfn3

from speakup_fx.models.paper import PaperGenerator
from speakup_fx.models.streaming import StreamingGenerator
from speakup_fx.runtime.host import ModelHost
from speakup_fx.runtime.weights import build_model, default_weights, read_info

SAMPLE_RATE = 16_000
HOP = 160


@pytest.fixture(params=[2, 1], ids=["2threads", "1thread"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def audio(seconds: float) -> torch.Tensor:
    return 0.1 * torch.randn(1, 1, int(seconds * SAMPLE_RATE), generator=torch.Generator().manual_seed(0))


def record(benchmark, reference, seconds: float, threads: int) -> None:
    """Report the median round's RTF over ``seconds`` of audio and its ratio to ``reference``."""
    require_timing(benchmark)
    rtf = benchmark.stats.stats.median / seconds
    benchmark.extra_info.update(rtf=rtf, threads=threads, **reference.extra_info(rtf))
    print(f"\n{benchmark.name}: RTF {rtf:.4f}, {reference.describe(rtf)}")


@torch.inference_mode()
def test_streaming_generator_100ms_blocks(benchmark, dfn3_reference, threads):
    generator = StreamingGenerator().eval()
    x, block = audio(10.0), SAMPLE_RATE // 10

    def run():
        state = generator.initial_state(1)
        for i in range(0, x.shape[-1], block):
            _, state = generator.forward_stream(x[..., i : i + block], state)

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    record(benchmark, dfn3_reference(SAMPLE_RATE, 1), 10.0, threads)


@torch.inference_mode()
def test_streaming_generator_whole_file(benchmark, dfn3_reference, threads):
    generator = StreamingGenerator().eval()
    x = audio(10.0)
    benchmark.pedantic(generator, args=(x,), rounds=5, warmup_rounds=1)
    record(benchmark, dfn3_reference(SAMPLE_RATE, 1), 10.0, threads)


@torch.inference_mode()
def test_paper_generator_whole_file(benchmark, dfn3_reference, threads):
    generator = PaperGenerator().eval()
    x = audio(1.0)
    benchmark.pedantic(generator, args=(x,), rounds=2, warmup_rounds=1)
    record(benchmark, dfn3_reference(SAMPLE_RATE, 1), 1.0, threads)


DFNET_RATIO_TARGET = 0.25
"""DFNet's RTF / DFN3's RTF per channel, at most."""


def record_beside_dfn3(benchmark, run, threads: int) -> float:
    """Time ``run`` (over ``AUDIO_S`` s of 16 kHz mono) beside DFN3 and report it; returns the paired ratio."""
    round_rtfs, reference = time_beside_dfn3(benchmark, run, SAMPLE_RATE, 1)
    ratio, rtf = reference.paired_ratio(round_rtfs), statistics.median(round_rtfs)
    benchmark.extra_info.update(rtf=rtf, threads=threads, **reference.extra_info(rtf), paired_ratio_to_dfn3=ratio)
    print(f"\n{benchmark.name}: RTF {rtf:.4f}, {ratio:.3f} x DFN3 paired by round ({reference.describe(rtf)})")
    return ratio


def shipped_dfnet():
    """A DFNet of the shipped enhancer's shape (its config from the weights file's header; speed does not depend on the values)."""
    return build_model(read_info(default_weights("enhancer"))).eval()


@torch.inference_mode()
@pytest.mark.parametrize("block_hops", [1, 10], ids=["10ms", "100ms"])
def test_dfnet_streams_at_a_quarter_of_dfn3(benchmark, threads, block_hops):
    model = shipped_dfnet()
    x, block = audio(AUDIO_S), block_hops * model.config.hop_samples

    def run():
        state = model.initial_state(1)
        for i in range(0, x.shape[-1], block):
            _, state = model.forward_stream(x[..., i : i + block], state)

    assert record_beside_dfn3(benchmark, run, threads) <= DFNET_RATIO_TARGET


@torch.inference_mode()
def test_dfnet_whole_file(benchmark, threads):
    model, x = shipped_dfnet(), audio(AUDIO_S)
    assert record_beside_dfn3(benchmark, lambda: model(x), threads) <= DFNET_RATIO_TARGET


@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
def test_dfnet_hosted_stream_10ms_blocks(benchmark, dfn3_reference, threads, channels):
    """What a real-time host pays per channel: the shipped weights stepped through a ``ModelHost`` stream
    (state copies, numpy in and out) in 10 ms blocks, one or two channels (a stereo stream steps both as a
    batch of two). Recorded next to DFN3 (mono); the target applies to the model above."""
    stream = ModelHost("cpu").stream("enhancer", channels)
    x = audio(10.0)[0].numpy().repeat(channels, axis=0)
    blocks = [np.ascontiguousarray(x[:, i : i + HOP]) for i in range(0, x.shape[-1], HOP)]

    def run():
        stream.reset()
        for block in blocks:
            stream.process(block)

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    record(benchmark, dfn3_reference(SAMPLE_RATE, 1), 10.0 * channels, threads)  # per channel
