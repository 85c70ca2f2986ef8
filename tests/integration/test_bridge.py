"""The bridge segment across real processes: validation on attach and a peer that attacks it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from speakup_fx._native import BridgeError, BridgeSegment, SharedMemory, bridge_segment_prefix

CHANNELS, SAMPLE_RATE_HZ, BLOCK_FRAMES, PARAM_COUNT, LATENCY_SAMPLES, CAPACITY_FRAMES = 2, 48000, 512, 17, 1024, 4096

# The server side in another process: attaches, echoes input negated to output until
# `seconds` pass, then prints the frames it moved and the parameter it saw.
ECHO_SERVER = """
import sys, time
import numpy as np
from speakup_fx._native import BridgeSegment
segment = BridgeSegment.attach(sys.argv[1])
segment.server_pid = __import__("os").getpid()
block = np.empty((segment.channels, 512), dtype=np.float32)
moved = 0
stop = time.monotonic() + float(sys.argv[2])
while time.monotonic() < stop:
    seen = segment.server_wake_count
    count = segment.input.read_into(block[:, : segment.output.space()])
    if segment.input.corrupt:
        segment.input.clear()
    if count:
        segment.output.write(np.negative(block[:, :count]))
        segment.wake_client()
        moved += count
    else:
        segment.wait_server(seen, 0.01)
print(moved, segment.params()[3])
"""


def shm_path(name: str) -> Path:
    return Path("/dev/shm") / name


@pytest.fixture
def segment_name():
    name = f"{bridge_segment_prefix()}it-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    if shm_path(name).exists():
        shm_path(name).unlink()


def create(name: str) -> BridgeSegment:
    return BridgeSegment.create(
        name, CHANNELS, SAMPLE_RATE_HZ, BLOCK_FRAMES, PARAM_COUNT, LATENCY_SAMPLES, CAPACITY_FRAMES
    )


def start_echo_server(name: str, seconds: float, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", ECHO_SERVER, name, str(seconds)],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for_server(segment: BridgeSegment, child: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30.0
    while segment.server_pid == 0 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert segment.server_pid == child.pid, child.stderr.read() if child.stderr else ""


def test_audio_and_parameters_round_trip_through_another_process(segment_name, tmp_path):
    segment = create(segment_name)
    segment.set_param(3, 0.75)
    child = start_echo_server(segment_name, 2.0, tmp_path)
    wait_for_server(segment, child)
    source = np.random.default_rng(5).standard_normal((CHANNELS, 48000), dtype=np.float32)
    received = np.zeros_like(source)
    sent = done = 0
    deadline = time.monotonic() + 30.0
    while done < source.shape[1] and time.monotonic() < deadline:
        sent += segment.input.write(source[:, sent : sent + BLOCK_FRAMES])
        segment.wake_server()
        seen = segment.client_wake_count
        got = segment.output.read_into(received[:, done:])
        done += got
        if not got:
            segment.wait_client(seen, 0.01)
    stdout, stderr = child.communicate(timeout=30)
    assert child.returncode == 0, stderr
    moved, param = stdout.split()
    assert int(moved) == source.shape[1]
    assert float(param) == 0.75
    np.testing.assert_array_equal(received, -source)


def test_a_segment_that_is_not_a_bridge_is_refused(segment_name):
    shm = SharedMemory.create(segment_name, 4096)
    memoryview(shm)[:4] = b"RIFF"
    with pytest.raises(BridgeError, match="not a SpeakUp bridge segment"):
        BridgeSegment.attach(segment_name)
    del shm


def test_a_segment_with_wrong_sizes_is_refused(segment_name):
    create(segment_name)
    with open(shm_path(segment_name), "r+b") as raw:
        raw.seek(8)
        raw.write((9).to_bytes(4, sys.byteorder))  # channels
    with pytest.raises(BridgeError, match="channels = 9"):
        BridgeSegment.attach(segment_name)


def test_a_segment_other_users_can_open_is_refused(segment_name):
    create(segment_name)
    os.chmod(shm_path(segment_name), 0o666)
    with pytest.raises(ValueError, match="mode 0666"):
        BridgeSegment.attach(segment_name)


def test_a_peer_truncating_the_segment_breaks_it_without_killing_us(segment_name, tmp_path):
    segment = create(segment_name)
    segment.input.write(np.ones((CHANNELS, BLOCK_FRAMES), dtype=np.float32))
    truncate = f"import os; os.truncate({str(shm_path(segment_name))!r}, 0)"
    subprocess.run([sys.executable, "-c", truncate], check=True, cwd=tmp_path, timeout=60)
    assert segment.output.read(BLOCK_FRAMES).shape == (CHANNELS, 0)  # SIGBUS without the guard
    assert segment.broken


def test_both_sides_survive_a_peer_rewriting_header_bytes_while_streaming(segment_name, tmp_path):
    segment = create(segment_name)
    child = start_echo_server(segment_name, 3.0, tmp_path)
    wait_for_server(segment, child)
    rng = np.random.default_rng(7)
    # Header 384 bytes, 17 parameters padded to 128, then two rings of equal size.
    in_offset, out_offset = 384 + 128, 384 + 128 + (segment.total_bytes - 384 - 128) // 2
    regions = [(0, 384), (in_offset, in_offset + 192), (out_offset, out_offset + 192)]
    block = np.full((CHANNELS, BLOCK_FRAMES), 0.5, dtype=np.float32)
    received = 0
    descriptor = os.open(shm_path(segment_name), os.O_RDWR)
    try:
        stop = time.monotonic() + 2.5
        while time.monotonic() < stop:
            begin, end = regions[rng.integers(3)]
            os.pwrite(descriptor, rng.bytes(1), int(rng.integers(begin, end)))
            assert segment.input.write(block) <= BLOCK_FRAMES
            segment.wake_server()
            out = segment.output.read(CAPACITY_FRAMES * 4)
            assert out.shape[1] <= CAPACITY_FRAMES
            received += out.shape[1]
            if segment.output.corrupt:
                segment.output.clear()
    finally:
        os.close(descriptor)
    stdout, stderr = child.communicate(timeout=30)
    assert child.returncode == 0, stderr
    assert received > 0
    assert segment.channels == CHANNELS and segment.ring_capacity_frames == CAPACITY_FRAMES
