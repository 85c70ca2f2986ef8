"""The native SPSC ring buffer through its Python binding (``speakup_fx._native``)."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest

from speakup_fx._native import RING_ALIGNMENT_BYTES, RingBuffer, SharedMemory


def ramp(channels: int, frames: int, start: int = 0) -> np.ndarray:
    """A float32 (channels, frames) block whose every sample is distinct."""
    frame_values = np.arange(start, start + frames, dtype=np.float32)
    channel_offsets = 1_000_000 * np.arange(channels, dtype=np.float32)[:, None]
    return frame_values[None, :] + channel_offsets


@pytest.fixture
def segment():
    """A 64 KiB shared-memory segment, unlinked afterwards."""
    shm = SharedMemory.create(f"speakup-unit-{uuid.uuid4().hex[:12]}", 65536)
    yield shm
    shm.unlink()


def test_a_new_ring_is_empty_and_reports_its_shape():
    ring = RingBuffer(2, 7)
    assert (ring.channels, ring.capacity_frames) == (2, 7)
    assert ring.available() == 0
    assert ring.space() == 7
    assert ring.read(10).shape == (2, 0)


def test_frames_come_back_in_order_across_many_wrap_arounds():
    ring = RingBuffer(2, 5)
    for start in range(0, 60, 3):
        assert ring.write(ramp(2, 3, start)) == 3
        np.testing.assert_array_equal(ring.read(3), ramp(2, 3, start))
    assert ring.available() == 0


def test_write_returns_only_the_frames_that_fit():
    ring = RingBuffer(1, 5)
    assert ring.write(ramp(1, 8)) == 5
    assert ring.space() == 0
    assert ring.write(ramp(1, 8, 100)) == 0
    np.testing.assert_array_equal(ring.read(100), ramp(1, 5))


def test_read_returns_at_most_the_available_frames():
    ring = RingBuffer(3, 10)
    ring.write(ramp(3, 6))
    first = ring.read(4)
    rest = ring.read(100)
    assert first.shape == (3, 4) and rest.shape == (3, 2)
    assert first.dtype == np.float32 and first.flags.c_contiguous
    np.testing.assert_array_equal(np.concatenate([first, rest], axis=1), ramp(3, 6))
    assert ring.read(0).shape == (3, 0)


def test_each_row_of_a_block_is_one_channel():
    ring = RingBuffer(4, 16)
    block = np.zeros((4, 3), dtype=np.float32)
    block[2] = [7.0, 8.0, 9.0]
    ring.write(block)
    out = ring.read(3)
    np.testing.assert_array_equal(out[2], [7.0, 8.0, 9.0])
    assert not out[[0, 1, 3]].any()


def test_read_into_fills_the_leading_frames_and_leaves_the_rest():
    ring = RingBuffer(2, 16)
    ring.write(ramp(2, 5))
    out = np.full((2, 8), -1.0, dtype=np.float32)
    assert ring.read_into(out) == 5
    np.testing.assert_array_equal(out[:, :5], ramp(2, 5))
    assert (out[:, 5:] == -1.0).all()
    assert ring.read_into(out) == 0


def test_frame_slices_of_larger_arrays_are_accepted_as_they_are():
    ring = RingBuffer(2, 32)
    source = ramp(2, 100)
    assert ring.write(source[:, 10:30]) == 20
    big_out = np.zeros((2, 50), dtype=np.float32)
    assert ring.read_into(big_out[:, 5:15]) == 10
    np.testing.assert_array_equal(big_out[:, 5:15], source[:, 10:20])
    np.testing.assert_array_equal(ring.read(10), source[:, 20:30])


def test_write_does_not_change_the_callers_block():
    ring = RingBuffer(2, 4)
    block = ramp(2, 6)
    ring.write(block)
    ring.read(4)
    np.testing.assert_array_equal(block, ramp(2, 6))


def test_clear_discards_the_available_frames():
    ring = RingBuffer(2, 8)
    ring.write(ramp(2, 6))
    ring.clear()
    assert ring.available() == 0 and ring.space() == 8
    ring.write(ramp(2, 3, 50))
    np.testing.assert_array_equal(ring.read(8), ramp(2, 3, 50))


@pytest.mark.parametrize("capacity_frames", [1, 7, 48_001])
def test_any_positive_capacity_streams_exactly(capacity_frames):
    ring = RingBuffer(1, capacity_frames)
    source = ramp(1, 3 * capacity_frames + 5)
    received = []
    position = 0
    while position < source.shape[1] or ring.available():
        position += ring.write(source[:, position : position + capacity_frames // 2 + 1])
        received.append(ring.read(capacity_frames // 3 + 1))
    np.testing.assert_array_equal(np.concatenate(received, axis=1), source)


def test_a_block_of_another_dtype_is_a_type_error():
    ring = RingBuffer(2, 8)
    with pytest.raises(TypeError, match="block must be float32, got float64"):
        ring.write(np.zeros((2, 4)))
    with pytest.raises(TypeError, match="block must be a numpy.ndarray, got list"):
        ring.write([[0.0], [0.0]])
    with pytest.raises(TypeError, match="out must be float32, got int16"):
        ring.read_into(np.zeros((2, 4), dtype=np.int16))
    assert ring.available() == 0


def test_a_block_of_the_wrong_shape_or_layout_is_a_value_error():
    ring = RingBuffer(2, 8)
    with pytest.raises(ValueError, match=r"block must be 2-D \(channels, frames\), got shape \(4,\)"):
        ring.write(np.zeros(4, dtype=np.float32))
    with pytest.raises(ValueError, match="block has 3 channels, the ring has 2"):
        ring.write(np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="contiguous frames"):
        ring.write(np.zeros((2, 8), dtype=np.float32)[:, ::2])
    with pytest.raises(ValueError, match="contiguous frames"):
        ring.write(np.asfortranarray(np.zeros((2, 4), dtype=np.float32)))
    with pytest.raises(ValueError, match="out has 1 channels, the ring has 2"):
        ring.read_into(np.zeros((1, 4), dtype=np.float32))
    read_only = np.zeros((2, 4), dtype=np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        ring.read_into(read_only)
    assert ring.available() == 0


def test_bad_sizes_are_value_errors_naming_the_argument():
    with pytest.raises(ValueError, match="channels must be >= 1, got 0"):
        RingBuffer(0, 8)
    with pytest.raises(ValueError, match="capacity_frames must be >= 1, got -3"):
        RingBuffer(1, -3)
    with pytest.raises(ValueError, match="max_frames must be >= 0, got -1"):
        RingBuffer(1, 8).read(-1)
    with pytest.raises(TypeError):
        RingBuffer(1, 8.0)


def test_required_bytes_follow_the_header_layout():
    # 192-byte header, then one 64-byte aligned stretch of float32 per channel.
    assert RingBuffer.required_bytes(2, 5) == 192 + 2 * 64
    assert RingBuffer.required_bytes(1, 17) == 192 + 128
    assert RingBuffer.required_bytes(6, 48_000) % RING_ALIGNMENT_BYTES == 0
    with pytest.raises(ValueError, match="capacity_frames"):
        RingBuffer.required_bytes(2, 0)


def test_a_ring_in_shared_memory_is_shared_by_its_attached_views(segment):
    producer = RingBuffer.create_in(segment, 128, 2, 100)
    consumer = RingBuffer.attach_in(segment, 128)
    assert (consumer.channels, consumer.capacity_frames) == (2, 100)
    producer.write(ramp(2, 30))
    assert consumer.available() == 30
    np.testing.assert_array_equal(consumer.read(30), ramp(2, 30))
    assert producer.space() == 100
    header = np.frombuffer(segment, dtype=np.uint8)
    assert header[128:132].tobytes() == b"SURB"


def test_rings_placed_back_to_back_do_not_overlap(segment):
    first_bytes = RingBuffer.required_bytes(2, 333)
    first = RingBuffer.create_in(segment, 0, 2, 333)
    second = RingBuffer.create_in(segment, first_bytes, 1, 77)
    first.write(ramp(2, 333))
    second.write(ramp(1, 77, 5000))
    np.testing.assert_array_equal(first.read(333), ramp(2, 333))
    np.testing.assert_array_equal(second.read(77), ramp(1, 77, 5000))


def test_attach_to_memory_without_a_ring_names_the_bad_magic(segment):
    with pytest.raises(ValueError, match="bad magic 0x00000000"):
        RingBuffer.attach_in(segment, 0)


def test_attach_to_a_ring_of_another_protocol_version_is_refused(segment):
    RingBuffer.create_in(segment, 0, 2, 16)
    memoryview(segment)[4] = 99  # the version field
    with pytest.raises(ValueError, match="protocol version 99"):
        RingBuffer.attach_in(segment, 0)


def test_placement_outside_or_misaligned_in_the_segment_is_refused(segment):
    with pytest.raises(ValueError, match="not a multiple of 64"):
        RingBuffer.create_in(segment, 100, 2, 16)
    with pytest.raises(ValueError, match="outside the 65536-byte segment"):
        RingBuffer.create_in(segment, 65536, 2, 16)
    with pytest.raises(ValueError, match="needs 65728 bytes, region has 65536"):
        RingBuffer.create_in(segment, 0, 1, 16_384)


def test_attach_to_a_ring_larger_than_the_segment_is_refused(segment):
    RingBuffer.create_in(segment, 0, 1, 16_000)
    small = SharedMemory.create(f"speakup-unit-{uuid.uuid4().hex[:12]}", 4096)
    try:
        memoryview(small)[:192] = memoryview(segment)[:192]  # the header alone
        with pytest.raises(ValueError, match="needs 64192 bytes, region has 4096"):
            RingBuffer.attach_in(small, 0)
    finally:
        small.unlink()


def test_two_threads_stream_millions_of_frames_exactly_with_the_gil_released():
    rng = np.random.default_rng(7)
    total_frames = 3_000_000
    source = rng.standard_normal((2, total_frames), dtype=np.float32)
    received = np.full_like(source, np.nan)
    ring = RingBuffer(2, 4093)
    producer_sizes = rng.integers(1, 6000, size=total_frames)
    consumer_sizes = rng.integers(1, 6000, size=total_frames)
    deadline = time.monotonic() + 60.0

    def produce():
        position = 0
        for size in producer_sizes:
            if position >= total_frames or time.monotonic() > deadline:
                return
            end = min(position + size, total_frames)
            while position < end and time.monotonic() < deadline:
                written = ring.write(source[:, position:end])
                position += written
                if written == 0:
                    time.sleep(0)

    producer = threading.Thread(target=produce)
    producer.start()
    position = 0
    for size in consumer_sizes:
        if position >= total_frames or time.monotonic() > deadline:
            break
        count = ring.read_into(received[:, position : position + size])
        position += count
        if count == 0:
            time.sleep(0)
    producer.join()
    assert position == total_frames
    np.testing.assert_array_equal(received, source)
