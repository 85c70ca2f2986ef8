"""Latency compensation of a streaming processor: its output aligned with its input and as long.

The one way SpeakUp FX drops a processor's delay and flushes its tail with zeros, for a stream
of blocks (``aligned_blocks``) or a whole array (``aligned``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

FLUSH_BLOCK_FRAMES = 32_768
"""Zeros are fed at most this many frames at a time when flushing the tail."""


def aligned_blocks(
    process: Callable[[np.ndarray], np.ndarray],
    latency_samples: int | Callable[[], int],
    blocks: Iterable[np.ndarray],
    channels: int,
    hop_frames: int = 1,
    output_frames: Callable[[int], int] = lambda frames: frames,
) -> Iterator[np.ndarray]:
    """Stream float32 ``(channels, n)`` ``blocks`` through ``process``; yield its output aligned with the input.

    ``process`` keeps state between calls, returns ``output_frames(n)`` frames in all for ``n``
    frames given (as many, unless it changes the rate), delayed by ``latency_samples`` output
    frames (a callable is read after the first call, for processors that learn their delay from
    the first block), and is fed whole multiples of ``hop_frames``. The first ``latency_samples``
    output frames are dropped and zeros are fed at the end, so the frames yielded number exactly
    ``output_frames(frames given)``.
    """
    pending = np.zeros((channels, 0), np.float32)
    total_in = emitted = 0
    to_drop: int | None = None

    def run(chunk: np.ndarray) -> np.ndarray:
        nonlocal to_drop, emitted
        out = process(chunk)
        if to_drop is None:
            to_drop = int(latency_samples() if callable(latency_samples) else latency_samples)
        skipped = min(to_drop, out.shape[1])
        to_drop -= skipped
        out = out[:, skipped : skipped + output_frames(total_in) - emitted]
        emitted += out.shape[1]
        return out

    for block in blocks:
        total_in += block.shape[1]
        pending = np.concatenate([pending, block], axis=1) if pending.shape[1] else block
        usable = pending.shape[1] // hop_frames * hop_frames
        if usable:
            out = run(pending[:, :usable])
            pending = pending[:, usable:]
            if out.shape[1]:
                yield out
    flushed = 0
    largest_flush = -(-FLUSH_BLOCK_FRAMES // hop_frames) * hop_frames
    while emitted < output_frames(total_in):
        missing = output_frames(total_in) - emitted + (to_drop or 0)
        frames = min(-(-missing // hop_frames) * hop_frames, largest_flush)
        chunk = np.zeros((channels, frames), np.float32)
        chunk[:, : pending.shape[1]] = pending[:, :frames]
        pending = pending[:, frames:]
        flushed += frames
        if flushed > total_in + 10 * largest_flush:
            raise RuntimeError("the processor did not return its latency tail when fed zeros")
        out = run(chunk)
        if out.shape[1]:
            yield out


def aligned(
    process: Callable[[np.ndarray], np.ndarray],
    latency_samples: int | Callable[[], int],
    audio: np.ndarray,
    hop_frames: int = 1,
    block_frames: int = FLUSH_BLOCK_FRAMES,
) -> np.ndarray:
    """``aligned_blocks`` over a whole float32 ``(channels, frames)`` array, fed ``block_frames`` at a time."""
    blocks = (audio[:, start : start + block_frames] for start in range(0, audio.shape[1], block_frames))
    out = aligned_blocks(process, latency_samples, blocks, audio.shape[0], hop_frames)
    return np.concatenate([audio[:, :0], *out], axis=1)
