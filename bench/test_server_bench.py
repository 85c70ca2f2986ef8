"""The model server under real-time load, and the plugin's cost per call (run: pytest bench/test_server_bench.py --benchmark-enable -s).

The server's figures alone, in one command (a few minutes; prints a table and the load average):
    .venv/bin/pytest bench/test_server_bench.py -k "later_slot or sustains" --benchmark-enable -s -p no:cacheprovider

Later slot: one ``speakup serve`` process (CPU) with two simulated instances; the first stays
silent, the second gets one block per period at real-time pacing, alternately waking the server
through its doorbell (what the plugin does) and through the slot's own futex word only (what the
server used to sleep on for its first slot alone: it saw such a block when its poll ended).
Reported per way: the round trip's median and p99, and how long the server took to pick the block up.

Concurrent instances: one ``speakup serve`` process (CPU) serves N simulated plugin instances:
bridge segments made as the plugin makes them (preset ``restore``: the neural engine; stereo,
48 kHz), each fed one 512-frame block per period (10.7 ms) at real-time pacing by this process,
which wakes the server as the plugin does (the doorbell).
A block's round trip runs from its write to the moment its last frame is back. N grows until a
block misses the plugin's bridge budget (``kBridgeBlockFrames``: the plugin would play that block
dry, a dropout); reported: the most instances with the p99 round trip within the block period
and no dropout, and the most with no dropout (the plugin's bridge block absorbs the rest). The client is Python
on the same CPU, so its own work is part of the figures; the machine's other load is too.

Cost per call: ``pedalboard`` calls the installed SpeakUp.vst3 (offline, so it waits for the
server's engine whenever the server falls a bridge block behind) on 512-frame stereo blocks, and,
in the same run, ``pedalboard.Compressor`` and the Python ``SpeakUp`` effect (the same engine in
this process, no bridge; torch on one thread, as the server runs it) on the same blocks.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic import noisy_speech  # noqa: E402

SAMPLE_RATE = 48_000
CHANNELS = 2
BLOCK_FRAMES = 512
PERIOD_S = BLOCK_FRAMES / SAMPLE_RATE
PRESET = "restore"
RUN_S = 3.0
COUNTS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
CALLS = 300
REPO_ROOT = Path(__file__).resolve().parents[1]


def header_constant(name: str) -> int:
    header = (REPO_ROOT / "plugin" / "generated" / "SpeakUpInfo.hpp").read_text()
    return int(header.split(f"{name} = ")[1].split(";")[0])


@pytest.fixture
def runtime(tmp_path, monkeypatch) -> Path:
    """A private HOME and runtime dir (this run's server, lock and segment names are its own)."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("HOME", str(tmp_path))
    yield runtime
    from speakup_fx._native import bridge_segment_prefix

    for leftover in Path("/dev/shm").glob(bridge_segment_prefix() + "*"):
        leftover.unlink(missing_ok=True)


@pytest.fixture
def server(runtime, tmp_path):
    """A ``speakup serve`` process on the CPU."""
    with open(tmp_path / "server.log", "w") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "speakup_fx.cli", "serve", "--idle-exit-s", "60", "--device", "cpu"],
            stdout=log, stderr=log, cwd=tmp_path,
        )  # fmt: skip
    yield tmp_path / "server.log"
    child.terminate()
    child.wait(timeout=30)


class Instance:
    """One simulated plugin instance: its segment, and when each block went out and came back."""

    def __init__(self, index: int, preset: str = PRESET) -> None:
        from speakup_fx._native import BridgeSegment, bridge_segment_prefix

        self.doorbell = None  # the server's, once it attached this instance
        from speakup_fx.params import PARAMS, default_params
        from speakup_fx.presets import list_presets, load_preset

        wet_latency = -(-header_constant("kEngineLatencyBoundMs") * SAMPLE_RATE // 1000)
        self.segment = BridgeSegment.create(
            f"{bridge_segment_prefix()}{os.getpid()}-{index}", CHANNELS, SAMPLE_RATE, BLOCK_FRAMES,
            len(PARAMS) + 1, wet_latency, 8 * header_constant("kBridgeBlockFrames"),
        )  # fmt: skip
        values = {**default_params(), **load_preset(preset).params}
        for position, spec in enumerate(PARAMS):
            self.segment.set_param(position, values[spec.name])
        self.segment.set_param(len(PARAMS), list_presets().index(preset))
        self.scratch = np.empty((CHANNELS, self.segment.ring_capacity_frames), np.float32)
        self.sent: list[tuple[int, float]] = []  # (frames sent up to this block's end, send time)
        self.returned_frames = 0
        self.round_trips_s: list[float] = []
        self.refused_frames = 0

    def attached(self) -> bool:
        from speakup_fx._native import BridgeDoorbell, bridge_doorbell_name

        if self.segment.server_pid == 0:
            return False
        self.segment.output.read_into(self.scratch)  # the server's padding comes first
        self.doorbell = BridgeDoorbell.attach(bridge_doorbell_name())
        assert self.doorbell.server_pid == self.segment.server_pid, "the doorbell is not the serving server's"
        return True

    def send(self, block: np.ndarray, now: float, doorbell: bool = True) -> None:
        """Writes ``block`` and wakes the server: through its doorbell as the plugin does, else the slot's own word."""
        written = self.segment.input.write(block)
        self.refused_frames += block.shape[1] - written
        self.sent.append(((self.sent[-1][0] if self.sent else 0) + written, now))
        if doorbell:
            self.doorbell.ring()
        else:
            self.segment.wake_server()

    def collect(self, now: float) -> None:
        self.returned_frames += self.segment.output.read_into(self.scratch)
        while len(self.round_trips_s) < len(self.sent) and self.sent[len(self.round_trips_s)][0] <= self.returned_frames:
            self.round_trips_s.append(now - self.sent[len(self.round_trips_s)][1])


def run_paced(instances: list[Instance], blocks: list[np.ndarray]) -> None:
    """Send ``blocks`` to every instance one period apart, collecting answers in between; then drain (10 s at most)."""
    last = instances[-1].segment  # the server answers its slots in order: the last one answers last
    start = time.perf_counter() + 0.05
    sent = 0
    drain_until = None
    while True:
        now = time.perf_counter()
        if sent < len(blocks) and now >= start + sent * PERIOD_S:
            for instance in instances:
                instance.send(blocks[sent], now)
            sent += 1
        for instance in instances:
            instance.collect(time.perf_counter())
        if sent == len(blocks):
            drain_until = drain_until or now + 10.0
            if all(len(i.round_trips_s) == len(i.sent) for i in instances) or now > drain_until:
                return
        next_send = start + sent * PERIOD_S if sent < len(blocks) else now + 0.001
        last.wait_client(last.client_wake_count, max(0.0, min(0.001, next_send - time.perf_counter())))


def wait_until_attached(instances: list[Instance]) -> None:
    deadline = time.monotonic() + 120
    pending = list(instances)
    while pending:
        assert time.monotonic() < deadline, "the server did not attach every instance within 120 s"
        pending = [instance for instance in pending if not instance.attached()]
        time.sleep(0.01)


def serve_instances(count: int, blocks: list[np.ndarray], first_index: int) -> dict[str, float]:
    instances = [Instance(first_index + n) for n in range(count)]
    try:
        wait_until_attached(instances)
        run_paced(instances, blocks)
    finally:
        for instance in instances:
            instance.segment.unlink()
    round_trips_ms = np.concatenate([np.array(i.round_trips_s) for i in instances]) * 1e3
    last_ms = np.array(instances[-1].round_trips_s) * 1e3
    lost = sum(len(i.sent) - len(i.round_trips_s) for i in instances)
    budget_ms = header_constant("kBridgeBlockFrames") / SAMPLE_RATE * 1e3
    return {
        "instances": count,
        "median_ms": float(np.median(round_trips_ms)),
        "p99_ms": float(np.percentile(round_trips_ms, 99)),
        "max_ms": float(round_trips_ms.max()),
        "last_slot_median_ms": float(np.median(last_ms)) if last_ms.size else float("nan"),
        "last_slot_p99_ms": float(np.percentile(last_ms, 99)) if last_ms.size else float("nan"),
        "dropouts": int(lost + (round_trips_ms > budget_ms).sum() + sum(i.refused_frames > 0 for i in instances)),
    }


def load_average() -> str:
    return "load average " + ", ".join(f"{load:.2f}" for load in os.getloadavg()) + f" (1, 5, 15 min) on {os.cpu_count()} CPUs"


LATER_SLOT_S = 6.0
WATCH_S = 50e-6  # how often the later-slot bench looks at the input ring (it sleeps in between)


@pytest.mark.parametrize("preset", ["restore", "podcast"])
def test_round_trip_of_a_later_slot_at_real_time_pacing(benchmark, server, preset):
    """``restore`` runs the neural engine, ``podcast`` the classic one (its round trip is mostly the bridge and the loop)."""
    from speakup_fx.server.serve import IDLE_WAIT_S

    audio = noisy_speech(LATER_SLOT_S, SAMPLE_RATE, channels=CHANNELS, seed=10)
    blocks = [np.ascontiguousarray(audio[:, s : s + BLOCK_FRAMES]) for s in range(0, audio.shape[1] - BLOCK_FRAMES + 1, BLOCK_FRAMES)]
    first = Instance(0, preset)
    wait_until_attached([first])  # the slot the old loop slept on: it stays silent
    later = Instance(1, preset)
    wait_until_attached([later])
    ways = {"doorbell": True, "slot word only": False}
    round_trips_ms: dict[str, list[float]] = {way: [] for way in ways}
    pick_ups_ms: dict[str, list[float]] = {way: [] for way in ways}

    def paced() -> None:
        start = time.perf_counter() + 0.05
        for index, block in enumerate(blocks):
            way = list(ways)[index % 2]
            time.sleep(max(0.0, start + index * PERIOD_S - time.perf_counter()))
            began = time.perf_counter()
            later.send(block, began, doorbell=ways[way])
            while later.segment.input.available():  # the server has not taken it yet
                time.sleep(WATCH_S)
            pick_ups_ms[way].append((time.perf_counter() - began) * 1e3)
            while len(later.round_trips_s) < len(later.sent):
                seen = later.segment.client_wake_count
                later.collect(time.perf_counter())
                if len(later.round_trips_s) < len(later.sent) and not later.segment.wait_client(seen, 5.0):
                    raise TimeoutError("the server did not answer within 5 s")
            round_trips_ms[way].append(later.round_trips_s[-1] * 1e3)

    try:
        benchmark.pedantic(paced, rounds=1, iterations=1)
    finally:
        first.segment.unlink()
        later.segment.unlink()
    figures = {
        way: {
            "round_trip_median_ms": float(np.median(round_trips_ms[way])),
            "round_trip_p99_ms": float(np.percentile(round_trips_ms[way], 99)),
            "pick_up_median_ms": float(np.median(pick_ups_ms[way])),
            "pick_up_p99_ms": float(np.percentile(pick_ups_ms[way], 99)),
        }
        for way in ways
    }
    benchmark.extra_info.update(preset=preset, later_slot=figures, blocks_per_way=len(blocks) // 2, load=os.getloadavg())
    print(f"\nsecond slot (the first silent), {preset}, {SAMPLE_RATE} Hz stereo, {BLOCK_FRAMES}-frame blocks "
          f"every {PERIOD_S * 1e3:.2f} ms, {len(blocks) // 2} blocks each way, server poll {IDLE_WAIT_S * 1e3:.0f} ms; {load_average()}:")
    for way, row in figures.items():
        print(f"  {way:>15}: round trip median {row['round_trip_median_ms']:.2f} ms, p99 {row['round_trip_p99_ms']:.2f} ms; "
              f"picked up after median {row['pick_up_median_ms']:.3f} ms, p99 {row['pick_up_p99_ms']:.3f} ms")
    assert all(len(times) == len(blocks) // 2 for times in round_trips_ms.values())
    assert all(np.isfinite(row["round_trip_p99_ms"]) for row in figures.values())


def test_concurrent_real_time_instances_one_server_sustains(benchmark, server):
    audio = noisy_speech(RUN_S, SAMPLE_RATE, channels=CHANNELS, seed=7)
    blocks = [np.ascontiguousarray(audio[:, s : s + BLOCK_FRAMES]) for s in range(0, audio.shape[1] - BLOCK_FRAMES + 1, BLOCK_FRAMES)]
    rows: list[dict[str, float]] = []

    def sweep() -> None:
        rows.clear()
        for count in COUNTS:
            rows.append(serve_instances(count, blocks, first_index=sum(r["instances"] for r in rows)))
            if rows[-1]["dropouts"]:
                return

    benchmark.pedantic(sweep, rounds=1, iterations=1)
    sustained = max((int(r["instances"]) for r in rows if r["p99_ms"] <= PERIOD_S * 1e3 and not r["dropouts"]), default=0)
    without_dropouts = max((int(r["instances"]) for r in rows if not r["dropouts"]), default=0)
    benchmark.extra_info.update(
        sustained_instances=sustained, instances_without_dropouts=without_dropouts, sweep=rows,
        period_ms=PERIOD_S * 1e3, cpus=os.cpu_count(), load=os.getloadavg(),
    )  # fmt: skip
    print(f"\n{PRESET} (neural), {SAMPLE_RATE} Hz stereo, {BLOCK_FRAMES}-frame blocks (period {PERIOD_S * 1e3:.2f} ms), "
          f"round trip per block, all instances (last slot); {load_average()}:")
    for r in rows:
        print(f"  {r['instances']:>3} instances: median {r['median_ms']:.2f} ms ({r['last_slot_median_ms']:.2f}), "
              f"p99 {r['p99_ms']:.2f} ms ({r['last_slot_p99_ms']:.2f}), max {r['max_ms']:.2f} ms, dropouts {r['dropouts']}")
    print(f"  sustained (p99 within the period, no dropout): {sustained} instance(s); "
          f"without dropouts: {without_dropouts} instance(s)")
    assert rows and all(np.isfinite(r["p99_ms"]) and r["median_ms"] > 0 for r in rows)
    assert "slot " in server.read_text()  # the server really served the instances


@pytest.fixture
def installed_plugin(runtime, tmp_path):
    """The stereo bundle built for the tests, installed into this run's HOME; its server is stopped afterwards."""
    import gc

    from plugin_build import plugin_bundles

    from speakup_fx.server.install import install_plugin

    bundle = install_plugin(plugin_bundles()["SpeakUp"], tmp_path / ".vst3")
    yield bundle
    gc.collect()  # destroy the instances first: a live instance restarts its server
    lock = runtime / "speakup" / "server.lock"
    pid = int(lock.read_text().strip() or 0) if lock.exists() else 0
    if pid:
        os.kill(pid, 15)


def per_call_seconds(process, blocks: list[np.ndarray]) -> list[float]:
    spent = []
    for block in blocks:
        began = time.perf_counter()
        process(block)
        spent.append(time.perf_counter() - began)
    return spent


@pytest.fixture
def one_torch_thread():
    """Torch on one thread in this process, as the server runs it (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("preset", ["restore", "podcast"])
def test_plugin_cost_per_call_against_a_built_in_plugin(benchmark, installed_plugin, one_torch_thread, preset):
    import pedalboard

    from speakup_fx import SpeakUp

    plugin = pedalboard.load_plugin(str(installed_plugin))
    plugin.current_program = preset
    compressor = pedalboard.Compressor()
    effect = SpeakUp(preset)
    audio = noisy_speech(CALLS * PERIOD_S, SAMPLE_RATE, channels=CHANNELS, seed=8)
    blocks = [np.ascontiguousarray(audio[:, s : s + BLOCK_FRAMES]) for s in range(0, CALLS * BLOCK_FRAMES, BLOCK_FRAMES)]
    candidates = {
        "SpeakUp.vst3": lambda block: plugin.process(block, SAMPLE_RATE, buffer_size=BLOCK_FRAMES, reset=False),
        "SpeakUp (Python)": lambda block: effect.process(block, SAMPLE_RATE, buffer_size=BLOCK_FRAMES, reset=False),
        "Compressor": lambda block: compressor.process(block, SAMPLE_RATE, buffer_size=BLOCK_FRAMES, reset=False),
    }
    for process in candidates.values():  # warm-up: the server starts, the model loads
        per_call_seconds(process, blocks[:20])
    spent = {name: np.array(per_call_seconds(process, blocks)) * 1e3 for name, process in candidates.items()}
    benchmark.pedantic(candidates["SpeakUp.vst3"], args=(blocks[0],), rounds=50, warmup_rounds=5)
    # Offline, the plugin waits only when the server falls a bridge block behind: most calls just copy,
    # a few wait for several blocks at once. The mean is the cost of a call; the median, of one that does not wait.
    mean_ms = {name: float(ms.mean()) for name, ms in spent.items()}
    ratio = mean_ms["SpeakUp.vst3"] / mean_ms["Compressor"]
    benchmark.extra_info.update(
        preset=preset, per_call_mean_ms=mean_ms, plugin_median_ms=float(np.median(spent["SpeakUp.vst3"])),
        plugin_over_compressor=ratio,
    )  # fmt: skip
    print(f"\n{preset}: per {BLOCK_FRAMES}-frame stereo call (mean of {CALLS}): "
          + ", ".join(f"{name} {ms:.3f} ms" for name, ms in mean_ms.items())
          + f"; SpeakUp.vst3 / Compressor = {ratio:.1f}x, SpeakUp.vst3 / SpeakUp (Python) = "
          f"{mean_ms['SpeakUp.vst3'] / mean_ms['SpeakUp (Python)']:.2f}x; "
          f"SpeakUp.vst3 median {np.median(spent['SpeakUp.vst3']):.3f} ms, Compressor median {np.median(spent['Compressor']):.3f} ms")
    out = plugin.process(blocks[0], SAMPLE_RATE, buffer_size=BLOCK_FRAMES, reset=False)
    assert out.shape == blocks[0].shape and np.isfinite(out).all()
    assert 0 < ratio < float("inf")


@pytest.mark.parametrize("count", [1, 4, 8])
def test_engines_stepped_together_against_each_alone(benchmark, one_torch_thread, count):
    """What one server iteration costs for ``count`` instances with their models batched, against stepped one by one."""
    from speakup_fx.params import default_params
    from speakup_fx.presets import load_preset
    from speakup_fx.runtime.batching import run_batched
    from speakup_fx.runtime.host import ModelHost
    from speakup_fx.server.serve import make_engine

    host, preset = ModelHost("cpu"), load_preset(PRESET)
    audio = noisy_speech(2.0, SAMPLE_RATE, channels=CHANNELS, seed=9)
    blocks = [np.ascontiguousarray(audio[:, s : s + BLOCK_FRAMES]) for s in range(0, audio.shape[1] - BLOCK_FRAMES + 1, BLOCK_FRAMES)]

    def engines():
        made = [make_engine(CHANNELS, SAMPLE_RATE, preset.options, {**default_params(), **preset.params}, host) for _ in range(count)]
        for engine in made:
            engine.prepare()
        return made

    def alone(made):
        return [[engine.process(block) for engine in made] for block in blocks]

    def together(made):
        return [run_batched([engine.steps(block) for engine in made]) for block in blocks]

    spent_ms = {}
    outputs = {}
    for name, run in (("alone", alone), ("together", together)) * 2:  # twice each, the faster counts
        made = engines()
        began = time.perf_counter()
        outputs[name] = run(made)
        spent_ms[name] = min(spent_ms.get(name, np.inf), (time.perf_counter() - began) / len(blocks) * 1e3)
    benchmark.pedantic(together, args=(engines(),), rounds=1, iterations=1)
    speedup = spent_ms["alone"] / spent_ms["together"]
    benchmark.extra_info.update(instances=count, per_block_ms=spent_ms, speedup=speedup)
    print(f"\n{count} x {PRESET} stereo: per {BLOCK_FRAMES}-frame block for all, alone {spent_ms['alone']:.2f} ms, "
          f"together {spent_ms['together']:.2f} ms ({speedup:.2f}x; period {PERIOD_S * 1e3:.2f} ms)")
    for alone_block, together_block in zip(outputs["alone"], outputs["together"], strict=True):
        for a, b in zip(alone_block, together_block, strict=True):
            assert np.abs(a - b).max() <= 1e-5
    assert speedup > 0
