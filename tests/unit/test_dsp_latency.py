"""dsp.latency: a delayed processor's output comes back aligned with its input and exactly as long."""

from __future__ import annotations

import numpy as np
import pytest

from speakup_fx.dsp.latency import aligned, aligned_blocks


class Delay:
    """Delays by ``latency`` frames and doubles; takes only whole multiples of ``hop``."""

    def __init__(self, channels: int, latency: int, hop: int = 1) -> None:
        self.latency, self.hop = latency, hop
        self._history = np.zeros((channels, latency), np.float32)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        assert block.shape[1] % self.hop == 0
        joined = np.concatenate([self._history, block], axis=1)
        self._history = joined[:, joined.shape[1] - self.latency :]
        return 2 * joined[:, : block.shape[1]]


@pytest.mark.parametrize("latency, hop", [(0, 1), (701, 1), (96, 480), (5000, 441)])
@pytest.mark.parametrize("block_frames", [1, 37, 4096, 100_000])
def test_the_output_is_the_input_aligned_and_as_long(latency, hop, block_frames):
    audio = np.random.default_rng(0).standard_normal((2, 12_345)).astype(np.float32)
    out = aligned(Delay(2, latency, hop), latency, audio, hop_frames=hop, block_frames=block_frames)
    np.testing.assert_array_equal(out, 2 * audio)


def test_a_latency_read_after_the_first_call_is_used():
    audio = np.random.default_rng(1).standard_normal((1, 5_000)).astype(np.float32)
    delay = Delay(1, 300)
    learned: list[int] = []
    blocks = (audio[:, i : i + 999] for i in range(0, 5_000, 999))
    out = np.concatenate(list(aligned_blocks(delay, lambda: learned[0], _learning(blocks, learned), 1)), axis=1)
    np.testing.assert_array_equal(out, 2 * audio)


def _learning(blocks, learned):
    for block in blocks:
        learned[:] = [300]  # known only once streaming has started
        yield block


def test_a_processor_that_never_returns_its_tail_is_an_error():
    with pytest.raises(RuntimeError, match="did not return its latency tail"):
        aligned(lambda block: block[:, :0], 10, np.ones((1, 1000), np.float32))
