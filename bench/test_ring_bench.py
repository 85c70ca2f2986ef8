"""Ring buffer throughput through the Python binding (run: pytest bench/ --benchmark-enable)."""

from __future__ import annotations

import numpy as np
import pytest

from speakup_fx._native import RingBuffer

CHANNELS = 2
FRAMES_PER_ROUND = 480_000  # 10 s at 48 kHz


@pytest.mark.parametrize("block_frames", [64, 480, 4096])
def test_stereo_write_read_throughput(benchmark, block_frames):
    """One thread writes a block and reads it back into a preallocated array, 10 s of audio."""
    ring = RingBuffer(CHANNELS, 8192)
    block = np.random.default_rng(0).standard_normal((CHANNELS, block_frames), dtype=np.float32)
    out = np.empty_like(block)
    blocks = FRAMES_PER_ROUND // block_frames

    def stream() -> int:
        moved = 0
        for _ in range(blocks):
            ring.write(block)
            moved += ring.read_into(out)
        return moved

    assert benchmark(stream) == blocks * block_frames
    np.testing.assert_array_equal(out, block)
    if benchmark.stats is not None:
        frames_per_s = blocks * block_frames / benchmark.stats.stats.mean
        benchmark.extra_info["frames_per_s"] = frames_per_s
        benchmark.extra_info["block_frames"] = block_frames
