"""The model server across real processes: prompt wake-ups on any slot through its doorbell, refusal,
restarts, and heartbeats that go on while another slot's engine is built.

Each test runs its own ``speakup serve`` (CPU) with a private runtime dir, so the doorbell name
(``bridge_doorbell_name()``, scoped by that dir) and the segment names are the test's alone.
The instances here are Python clients that speak the protocol as the plugin does
(plugin/SpeakUpPlugin.cpp; the plugin itself is tested in test_plugin_server.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from synthetic import noisy_speech

from speakup_fx._native import BridgeDoorbell, BridgeError, BridgeSegment, SharedMemory, bridge_doorbell_name, bridge_segment_prefix
from speakup_fx.params import PARAMS, default_params
from speakup_fx.presets import list_presets, load_preset
from speakup_fx.server.serve import IDLE_WAIT_S

SAMPLE_RATE = 48000
BLOCK_FRAMES = 512
PERIOD_S = BLOCK_FRAMES / SAMPLE_RATE
PRESET = "podcast"  # the classic engine: no model to load, a cheap step
WET_LATENCY_SAMPLES = 4096
START_TIMEOUT_S = 120.0  # python + torch import on a loaded machine
WATCH_S = 50e-6  # how often a test looks at a ring: it sleeps in between, leaving the CPUs to the server
POLL_S = 0.04  # the server's poll in the latency test (see there)
PLUGIN_HEARTBEAT_TIMEOUT_S = 2.0  # kHeartbeatTimeoutMs (plugin/SpeakUpPlugin.cpp): offline, an instance waits this long
BUILD_S = 1.5 * PLUGIN_HEARTBEAT_TIMEOUT_S  # how long the heartbeat test's engine builds take at least
WATCH_POLL_S = 0.001  # how often the heartbeat test looks at the heartbeat and the output ring


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """A private runtime dir; every server started in it is killed afterwards, every segment removed."""
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(directory))
    servers: list[subprocess.Popen[bytes]] = []
    yield servers
    for server in servers:
        server.kill()
        server.wait(timeout=30)
    for leftover in Path("/dev/shm").glob(bridge_segment_prefix() + "*"):
        leftover.unlink(missing_ok=True)


# ``speakup serve`` with its poll (``IDLE_WAIT_S``, the longest sleep while it has slots) set to argv[1] seconds,
# without a doorbell if argv[2] says so (as when another user's file holds the doorbell's name), and every engine
# build first spinning in Python for argv[4] seconds (holding the GIL, as a slow model load's Python part does).
SERVE = """
import sys
import time
import speakup_fx.server.serve
from speakup_fx.cli import main
speakup_fx.server.serve.IDLE_WAIT_S = float(sys.argv[1])
if sys.argv[2] == "no-doorbell":
    speakup_fx.server.serve.open_doorbell = lambda: None
if float(sys.argv[4]) > 0:
    make_engine = speakup_fx.server.serve.make_engine
    def slow_make_engine(*args):
        end = time.monotonic() + float(sys.argv[4])
        while time.monotonic() < end:
            pass
        return make_engine(*args)
    speakup_fx.server.serve.make_engine = slow_make_engine
sys.exit(main(["serve", "--idle-exit-s", sys.argv[3], "--device", "cpu"]))
"""


def start_server(
    servers: list[subprocess.Popen[bytes]], log: Path, poll_s: float = IDLE_WAIT_S, doorbell: bool = True,
    idle_exit_s: float = 60.0, build_s: float = 0.0,
) -> subprocess.Popen[bytes]:
    with open(log, "ab") as output:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(poll_s), "doorbell" if doorbell else "no-doorbell", str(idle_exit_s),
             str(build_s)],
            stdout=output, stderr=output, cwd=log.parent,
        )  # fmt: skip
    servers.append(server)
    return server


def wait_for_doorbell(server: subprocess.Popen[bytes], log: Path) -> BridgeDoorbell:
    """The doorbell ``server`` made, once it is there."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            doorbell = BridgeDoorbell.attach(bridge_doorbell_name())
        except (FileNotFoundError, BridgeError):
            doorbell = None
        if doorbell is not None and doorbell.server_pid == server.pid:
            return doorbell
        time.sleep(0.02)
    raise AssertionError(f"server {server.pid} made no doorbell:\n{log.read_text()}")


class Instance:
    """A plugin instance as the plugin makes it: the segment with every parameter and the program written."""

    def __init__(self, index: int, preset: str = PRESET) -> None:
        self.segment = BridgeSegment.create(
            f"{bridge_segment_prefix()}{os.getpid()}-{index}", 2, SAMPLE_RATE, BLOCK_FRAMES, len(PARAMS) + 1,
            WET_LATENCY_SAMPLES, 4 * WET_LATENCY_SAMPLES,
        )  # fmt: skip
        values = {**default_params(), **load_preset(preset).params}
        for position, spec in enumerate(PARAMS):
            self.segment.set_param(position, values[spec.name])
        self.segment.set_param(len(PARAMS), list_presets().index(preset))
        self.scratch = np.empty((2, self.segment.ring_capacity_frames), np.float32)

    def wait_until_served(self, server: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.segment.server_pid != server.pid:
            assert time.monotonic() < deadline and server.poll() is None, "the server did not attach the instance"
            time.sleep(0.01)
        self.segment.output.read_into(self.scratch)  # the server's padding comes first

    def pickup_s(self, block: np.ndarray, doorbell: BridgeDoorbell | None) -> float:
        """Seconds from writing ``block`` until the server took it from the input ring; rings ``doorbell``, else
        the segment's own word. Watches the ring (so the engine's cost is not counted), then waits
        until the block's output is back, so the server is idle again when this returns."""
        began = time.perf_counter()
        assert self.segment.input.write(block) == block.shape[1]
        if doorbell is not None:
            doorbell.ring()
        else:
            self.segment.wake_server()
        while self.segment.input.available():
            assert time.perf_counter() - began < 5.0, "the server took no input within 5 s"
            time.sleep(WATCH_S)
        picked_up_s = time.perf_counter() - began
        self.collect(block.shape[1])
        return picked_up_s

    def collect(self, frames: int) -> None:
        """Reads ``frames`` frames of output (5 s at most)."""
        returned = 0
        while returned < frames:
            seen = self.segment.client_wake_count
            got = self.segment.output.read_into(self.scratch[:, : frames - returned])
            returned += got
            if not got:
                assert self.segment.wait_client(seen, 5.0), "no output within 5 s"


def test_a_block_on_a_later_slot_is_picked_up_at_once_through_the_doorbell(runtime, tmp_path):
    """A block on the second slot, doorbell rung (as the plugin does) against only its segment's word rung (the
    old path: the server slept on the first slot's word, so it saw that block only when its poll ended).

    The server's poll is stretched to ``POLL_S`` = 40 ms here, so what it costs stands out of a loaded
    machine's scheduling delays (a few ms at a load of 10 on 2 CPUs), which both ways pay alike. Each block
    comes after the period plus a random share of the poll, while the server sleeps: the old way waits a
    uniform share of the poll (median 20 ms), the doorbell way only for the wake-up. Asserted: the doorbell's
    median is under a quarter of the poll, and the paired difference's median over a quarter of it. Blocks
    alternate between the two ways, so both see the same load.
    """
    log = tmp_path / "server.log"
    server = start_server(runtime, log, poll_s=POLL_S)
    doorbell = wait_for_doorbell(server, log)
    first = Instance(0)
    first.wait_until_served(server)  # the slot the old loop slept on: it stays silent
    later = Instance(1)
    later.wait_until_served(server)
    pairs = 50
    audio = noisy_speech(2 * pairs * PERIOD_S + 0.1, SAMPLE_RATE, channels=2, seed=12)
    blocks = [np.ascontiguousarray(audio[:, s : s + BLOCK_FRAMES]) for s in range(0, 2 * pairs * BLOCK_FRAMES, BLOCK_FRAMES)]
    delays_s = np.random.default_rng(3).uniform(PERIOD_S, PERIOD_S + POLL_S, len(blocks))
    rung, polled = [], []
    for pair in range(pairs):
        ways = [(rung, doorbell), (polled, None)]
        for (times, ring_with), block_index in zip(ways[:: 1 if pair % 2 else -1], (2 * pair, 2 * pair + 1)):
            time.sleep(delays_s[block_index])
            times.append(later.pickup_s(blocks[block_index], ring_with))
    rung_ms, polled_ms = np.array(rung) * 1e3, np.array(polled) * 1e3
    message = (
        f"pick-up median: doorbell {np.median(rung_ms):.3f} ms, segment word only {np.median(polled_ms):.3f} ms, "
        f"paired difference {np.median(polled_ms - rung_ms):.3f} ms (poll {POLL_S * 1e3:.0f} ms; "
        f"load average {os.getloadavg()[0]:.1f})"
    )
    assert np.median(rung_ms) < POLL_S * 1e3 / 4, message
    assert np.median(polled_ms - rung_ms) > POLL_S * 1e3 / 4, message
    first.segment.unlink()
    later.segment.unlink()


def test_a_server_without_a_doorbell_still_serves_a_later_slot(runtime, tmp_path):
    """When the doorbell cannot be made, instances wake their own segment's word and the server polls."""
    log = tmp_path / "server.log"
    server = start_server(runtime, log, doorbell=False)
    first = Instance(0)
    first.wait_until_served(server)
    later = Instance(1)
    later.wait_until_served(server)
    with pytest.raises(FileNotFoundError):
        BridgeDoorbell.attach(bridge_doorbell_name())
    block = noisy_speech(PERIOD_S, SAMPLE_RATE, channels=2, seed=14)[:, :BLOCK_FRAMES].copy()
    for _ in range(3):
        assert later.pickup_s(block, None) < 5.0
    first.segment.unlink()
    later.segment.unlink()


def test_a_foreign_or_malformed_doorbell_is_refused(runtime):
    name = bridge_doorbell_name()
    foreign = SharedMemory.create(name, 128)
    memoryview(foreign)[:4] = b"RIFF"
    with pytest.raises(BridgeError, match="not a SpeakUp doorbell"):
        BridgeDoorbell.attach(name)
    foreign.unlink()
    made = BridgeDoorbell.create(name)
    os.chmod(Path("/dev/shm") / name, 0o644)
    with pytest.raises(ValueError, match="mode 0644"):
        BridgeDoorbell.attach(name)
    os.chmod(Path("/dev/shm") / name, 0o600)
    os.truncate(Path("/dev/shm") / name, 4096)
    with pytest.raises(BridgeError, match="is 4096 bytes, not 128"):
        BridgeDoorbell.attach(name)
    made.unlink()
    with pytest.raises(FileNotFoundError):
        BridgeDoorbell.attach(name)


def test_the_server_replaces_a_malformed_or_a_killed_servers_doorbell_and_removes_its_own_on_exit(runtime, tmp_path):
    log = tmp_path / "server.log"
    name = bridge_doorbell_name()
    malformed = SharedMemory.create(name, 128)  # what a crashed or foreign process may leave
    memoryview(malformed)[:4] = b"RIFF"
    server = start_server(runtime, log)
    doorbell = wait_for_doorbell(server, log)  # the server made its own in its place

    # Replaced while serving: the server notices within a scan and makes a new one.
    Path("/dev/shm", name).unlink()
    malformed = SharedMemory.create(name, 128)
    memoryview(malformed)[:4] = b"RIFF"
    assert not doorbell.still_named()
    replaced = wait_for_doorbell(server, log)
    assert replaced.still_named() and "was truncated, removed or replaced" in log.read_text()

    # Killed: its doorbell stays behind, naming a dead pid; the next server replaces it, and an instance
    # that streamed through the first server is served by the second through the new doorbell.
    before = Instance(0)
    before.wait_until_served(server)
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    stale = BridgeDoorbell.attach(name)
    assert stale.server_pid == server.pid
    before.segment.unlink()  # the plugin opens a fresh segment when its server dies
    restarted = start_server(runtime, log, idle_exit_s=3.0)
    doorbell = wait_for_doorbell(restarted, log)
    assert not stale.still_named()
    after = Instance(1)
    after.wait_until_served(restarted)
    block = noisy_speech(PERIOD_S, SAMPLE_RATE, channels=2, seed=13)[:, :BLOCK_FRAMES].copy()
    seen = doorbell.count
    assert after.pickup_s(block, doorbell) < 5.0
    assert doorbell.count == seen + 1
    after.segment.unlink()  # its instance goes: the server goes idle, exits and removes its doorbell
    assert restarted.wait(timeout=60) == 0
    with pytest.raises(FileNotFoundError):
        BridgeDoorbell.attach(name)


def test_a_slot_is_served_and_beaten_while_another_slots_engine_is_built(runtime, tmp_path):
    """An offline instance waits for its server only while the server's heartbeat on its segment advances
    (``PLUGIN_HEARTBEAT_TIMEOUT_S``), then renders dry: a server that stopped beating its slots while it built a
    newly attached instance's engine (a first model load takes seconds) broke the other instances' bounces.

    Every engine build here takes at least ``BUILD_S``, longer than that timeout, spinning in Python. While the
    second instance's engine is built, the first streams blocks and its heartbeat is watched: asserted, neither
    its heartbeat nor a block's round trip ever stops for half the plugin's timeout (the contract is the whole
    timeout; the loop beats every few ms and waits at most ``GIL_SWITCH_INTERVAL_S`` per GIL hand-over to the build
    thread: 20-50 ms at worst here at a load of 10 on 2 CPUs, against 3 s when the loop built engines itself; the
    rest is margin for slower machines), and the second instance is served once its engine is there.
    """
    bound_s = PLUGIN_HEARTBEAT_TIMEOUT_S / 2
    log = tmp_path / "server.log"
    server = start_server(runtime, log, build_s=BUILD_S)
    doorbell = wait_for_doorbell(server, log)
    served = Instance(0)
    served.wait_until_served(server)
    block = noisy_speech(PERIOD_S, SAMPLE_RATE, channels=2, seed=15)[:, :BLOCK_FRAMES].copy()
    later = Instance(1)
    began = last_change = time.monotonic()
    last_beat = served.segment.server_heartbeat
    longest_silence_s = longest_round_trip_s = 0.0
    blocks = returned = 0
    sent = None  # when the block in flight was written
    while later.segment.server_pid != server.pid:
        assert server.poll() is None and time.monotonic() - began < START_TIMEOUT_S, log.read_text()
        now = time.monotonic()
        beat = served.segment.server_heartbeat
        if beat != last_beat:
            last_beat, last_change = beat, now
        longest_silence_s = max(longest_silence_s, now - last_change)
        if sent is None:
            assert served.segment.input.write(block) == BLOCK_FRAMES
            doorbell.ring()
            sent, returned = now, 0
        returned += served.segment.output.read_into(served.scratch[:, : BLOCK_FRAMES - returned])
        longest_round_trip_s = max(longest_round_trip_s, time.monotonic() - sent)
        if returned == BLOCK_FRAMES:
            sent, blocks = None, blocks + 1
        time.sleep(WATCH_POLL_S)
    building_s = time.monotonic() - began
    message = (
        f"while the engine was built ({building_s:.1f} s, {blocks} blocks): longest heartbeat silence "
        f"{longest_silence_s * 1e3:.0f} ms, longest round trip {longest_round_trip_s * 1e3:.0f} ms "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    assert building_s >= BUILD_S, message  # the watch spanned the whole build
    assert longest_silence_s < bound_s and longest_round_trip_s < bound_s, message
    later.wait_until_served(server)
    assert later.pickup_s(block, doorbell) < 5.0
    served.segment.unlink()
    later.segment.unlink()
