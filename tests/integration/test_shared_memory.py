"""Rings in POSIX shared memory, used by two real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from speakup_fx._native import RingBuffer, SharedMemory

TOTAL_FRAMES = 1_000_000
SEED = 11

# The child attaches by name, reads the input ring and writes each sample
# negated to the output ring: producer on one side, consumer on the other.
CHILD = """
import sys, time
import numpy as np
from speakup_fx._native import RingBuffer, SharedMemory

name, output_offset, total_frames = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
shm = SharedMemory.attach(name)
input_ring = RingBuffer.attach_in(shm, 0)
output_ring = RingBuffer.attach_in(shm, output_offset)
block = np.empty((input_ring.channels, 480), dtype=np.float32)
moved = 0
deadline = time.monotonic() + 60.0
while moved < total_frames and time.monotonic() < deadline:
    count = input_ring.read_into(block[:, : output_ring.space()])
    if count:
        assert output_ring.write(np.negative(block[:, :count])) == count
        moved += count
print(moved)
"""


def segment_path(name: str) -> Path:
    return Path("/dev/shm") / name


@pytest.fixture
def segment_name():
    """A fresh segment name; whatever is left under it is removed afterwards."""
    name = f"speakup-it-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    if segment_path(name).exists():
        SharedMemory.attach(name).unlink()


def test_two_processes_stream_through_rings_in_one_segment(segment_name, tmp_path):
    input_bytes = RingBuffer.required_bytes(2, 2000)
    shm = SharedMemory.create(segment_name, input_bytes + RingBuffer.required_bytes(2, 1500))
    input_ring = RingBuffer.create_in(shm, 0, 2, 2000)
    output_ring = RingBuffer.create_in(shm, input_bytes, 2, 1500)
    source = np.random.default_rng(SEED).standard_normal((2, TOTAL_FRAMES), dtype=np.float32)
    received = np.full_like(source, np.nan)

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, segment_name, str(input_bytes), str(TOTAL_FRAMES)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sent = done = 0
    deadline = time.monotonic() + 60.0
    while done < TOTAL_FRAMES and child.poll() is None and time.monotonic() < deadline:
        sent += input_ring.write(source[:, sent : sent + 700])
        done += output_ring.read_into(received[:, done : done + 333])
    done += output_ring.read_into(received[:, done:])
    stdout, stderr = child.communicate(timeout=60)

    assert child.returncode == 0, stderr
    assert int(stdout) == TOTAL_FRAMES
    assert done == TOTAL_FRAMES
    np.testing.assert_array_equal(received, -source)
    shm.unlink()
    assert not segment_path(segment_name).exists()


def test_a_created_segment_is_readable_and_writable_by_its_owner_only(segment_name):
    old_umask = os.umask(0)  # a permissive umask must not widen the mode
    try:
        shm = SharedMemory.create(segment_name, 4096)
    finally:
        os.umask(old_umask)
    assert segment_path(segment_name).stat().st_mode & 0o777 == 0o600
    assert (shm.name, shm.size_bytes) == (segment_name, 4096)
    shm.unlink()


def test_an_attached_segment_sees_the_creators_bytes(segment_name):
    created = SharedMemory.create("/" + segment_name, 4096)
    attached = SharedMemory.attach(segment_name)
    assert attached.size_bytes == 4096
    view = np.frombuffer(attached, dtype=np.uint8)
    assert not view.any()
    memoryview(created)[4095] = 42
    assert view[4095] == 42
    created.unlink()


def test_attaching_a_missing_segment_raises_file_not_found(segment_name):
    with pytest.raises(FileNotFoundError, match=segment_name):
        SharedMemory.attach(segment_name)


def test_creating_an_existing_segment_raises_file_exists(segment_name):
    shm = SharedMemory.create(segment_name, 64)
    with pytest.raises(FileExistsError, match=segment_name):
        SharedMemory.create(segment_name, 64)
    shm.unlink()


def test_an_unlinked_segment_can_no_longer_be_attached(segment_name):
    shm = SharedMemory.create(segment_name, 64)
    shm.unlink()
    assert not segment_path(segment_name).exists()
    with pytest.raises(FileNotFoundError):
        SharedMemory.attach(segment_name)
    with pytest.raises(FileNotFoundError):
        shm.unlink()
    memoryview(shm)[0] = 1  # the mapping itself stays valid until the object goes


def test_bad_segment_names_and_sizes_are_value_errors():
    with pytest.raises(ValueError, match="name is empty"):
        SharedMemory.create("", 64)
    with pytest.raises(ValueError, match="must not contain '/'"):
        SharedMemory.create("a/b", 64)
    with pytest.raises(ValueError, match="size_bytes must be >= 1, got 0"):
        SharedMemory.create(f"speakup-it-{uuid.uuid4().hex[:8]}", 0)
