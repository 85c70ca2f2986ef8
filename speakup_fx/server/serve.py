"""``speakup serve``: the per-user model server loop (see the package docstring for the protocol)."""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import re
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from speakup_fx._native import (
    BridgeDoorbell,
    BridgeError,
    BridgeSegment,
    bridge_doorbell_name,
    bridge_runtime_dir,
    bridge_segment_prefix,
)
from speakup_fx.atomic import process_alive
from speakup_fx.engine import Engine
from speakup_fx.params import PARAMS, ChainOptions
from speakup_fx.presets import list_presets, load_preset
from speakup_fx.runtime.batching import run_batched
from speakup_fx.runtime.device import thread_count
from speakup_fx.runtime.host import ModelHost
from speakup_fx.stages.chain import build_chain

logger = logging.getLogger(__name__)

SHM_DIR = Path("/dev/shm")
SCAN_INTERVAL_S = 0.02
IDLE_WAIT_S = 0.002  # the longest sleep with slots open: wake-ups that never come (no doorbell, output space freed)
LOCK_NAME = "server.lock"
# How long the loop may wait for the GIL while the build thread runs Python (the interpreter's default is 5 ms,
# paid at every hand-over: a step that releases the GIL a few dozen times then takes hundreds of ms).
GIL_SWITCH_INTERVAL_S = 0.0005


def make_engine(
    channels: int, sample_rate: int, options: ChainOptions, params: dict[str, float], host: ModelHost
) -> Engine:
    """The one place the server builds an engine: the chain for ``options``, its model streams from ``host``."""
    return Engine(channels, sample_rate, build_chain(channels, options, params, host), params)


def build_prepared_engine(
    channels: int, sample_rate: int, options: ChainOptions, params: dict[str, float], host: ModelHost
) -> Engine:
    """``make_engine``, prepared (its model loaded now, not on the first block): what the build thread runs."""
    engine = make_engine(channels, sample_rate, options, params, host)
    engine.prepare()
    return engine


def runtime_dir() -> Path:
    """The user's private directory for the lock (mode 0700, created if missing)."""
    path = Path(bridge_runtime_dir())
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise PermissionError(f"{path} must belong to uid {os.geteuid()} with mode 0700")
    return path


def acquire_server_lock(directory: Path) -> IO[str] | None:
    """The per-user server lock (held for the process's life), or None if another server holds it."""
    handle = open(directory / LOCK_NAME, "a+")  # noqa: SIM115 - kept open while the server runs
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def open_doorbell() -> BridgeDoorbell | None:
    """A fresh doorbell for this server, or None (then every slot is polled every ``IDLE_WAIT_S``).

    Whatever holds the name is a dead server's or a stranger's (this server holds the lock), so it
    goes first; another user's file there cannot be removed, and instances would refuse it anyway.
    """
    name = bridge_doorbell_name()
    try:
        _unlink_quietly(name)
        return BridgeDoorbell.create(name)
    except OSError as error:
        logger.warning("no doorbell, polling every %.0f ms instead: %s", IDLE_WAIT_S * 1e3, error)
        return None


@dataclass
class Slot:
    """One plugin instance: its segment and the engine that serves it."""

    segment: BridgeSegment
    engine: Engine
    program_index: int
    params_generation: int
    block: np.ndarray


@dataclass
class Build:
    """A segment whose engine the build thread is making; it becomes a ``Slot`` when ``engine`` is done."""

    segment: BridgeSegment
    program_index: int
    params_generation: int
    engine: Future[Engine]


def program_options(index: int, presets: list[str]) -> ChainOptions:
    return load_preset(presets[index]).options if 0 <= index < len(presets) else ChainOptions()


def params_of(segment: BridgeSegment) -> tuple[dict[str, float], int]:
    """The parameter block as validated values (clamped into range) and the program index."""
    values = segment.params()
    params = {}
    for spec, value in zip(PARAMS, values[: len(PARAMS)], strict=True):
        number = float(value) if np.isfinite(value) else spec.default
        params[spec.name] = min(max(number, spec.minimum), spec.maximum)
    program = int(values[len(PARAMS)]) if np.isfinite(values[len(PARAMS)]) else -1
    return params, program


class Server:
    """Attaches to every bridge segment of this user and streams each through its own engine.

    Every engine takes its model streams from the server's one ``ModelHost`` (models load once),
    and the model calls of all slots step together (see ``step``). Engines are built on one build
    thread (a first model load takes seconds), so the loop keeps serving and beating the other slots
    meanwhile; the loop itself turns a finished build into a slot (``take_built``).
    """

    def __init__(self, idle_exit_s: float, device: str = "auto", threads: int | None = None) -> None:
        self.idle_exit_s = idle_exit_s
        self.host = ModelHost(device, num_threads=threads)
        self.slots: dict[str, Slot] = {}
        self.building: dict[str, Build] = {}
        self.builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="speakup-engine-build")
        self.refused: set[str] = set()
        self.presets = list_presets()
        self.doorbell: BridgeDoorbell | None = None  # run() opens it

    def open_slot(self, name: str) -> None:
        """Validate segment ``name`` and start building its engine (``take_built`` makes it a slot)."""
        try:
            segment = BridgeSegment.attach(name)
        except (BridgeError, ValueError, OSError) as error:
            logger.warning("refusing segment %s: %s", name, error)
            self.refused.add(name)
            return
        if segment.server_pid != 0:  # served before: its stream position is unknown to us
            logger.info("leaving segment %s to its instance to replace (served by pid %d)", name, segment.server_pid)
            self.refused.add(name)
            return
        if str(segment.creator_pid) != name.split("-")[-2]:
            logger.warning("refusing segment %s: created by pid %d, not the pid in its name", name, segment.creator_pid)
            self.refused.add(name)
            return
        if segment.param_count != len(PARAMS) + 1:
            logger.warning("refusing segment %s: %d parameters, expected %d", name, segment.param_count, len(PARAMS) + 1)
            self.refused.add(name)
            return
        generation = segment.params_generation
        if generation < segment.param_count:  # the plugin has not written its whole block yet
            return
        params, program = params_of(segment)
        engine = self.builder.submit(
            build_prepared_engine,
            segment.channels, segment.sample_rate_hz, program_options(program, self.presets), params, self.host,
        )  # fmt: skip
        self.building[name] = Build(segment, program, generation, engine)

    def take_built(self) -> None:
        """Turn every finished build into a slot, served from the next ``step`` on.

        Parameters written during the build are applied by that step (a new program restarts the slot).
        """
        for name, build in list(self.building.items()):
            if not build.engine.done():
                continue
            del self.building[name]
            try:
                engine = build.engine.result()
            except Exception:
                logger.exception("refusing segment %s: its engine could not be built", name)
                self.refused.add(name)
                continue
            segment = build.segment
            padding = segment.wet_latency_samples - engine.latency_samples
            if padding < 0:
                logger.warning("refusing segment %s: engine latency %d > %d", name, engine.latency_samples, segment.wet_latency_samples)
                self.refused.add(name)
                continue
            segment.output.write(np.zeros((segment.channels, padding), dtype=np.float32))
            segment.server_pid = os.getpid()
            block = np.empty((segment.channels, segment.ring_capacity_frames), dtype=np.float32)
            self.slots[name] = Slot(segment, engine, build.program_index, build.params_generation, block)
            logger.info(
                "slot %s: %d ch at %d Hz, program %d, padding %d",
                name, segment.channels, segment.sample_rate_hz, build.program_index, padding,
            )  # fmt: skip

    def scan(self) -> None:
        """Start builds for new segments; close slots (and drop builds) whose name or creator is gone."""
        pattern = re.compile(re.escape(bridge_segment_prefix()) + r"\d+-\d+")
        names = {path.name for path in SHM_DIR.iterdir() if pattern.fullmatch(path.name)}
        for name in list(self.slots):
            slot = self.slots[name]
            creator_alive = process_alive(slot.segment.creator_pid)
            if name not in names or not creator_alive or slot.segment.broken:
                if name in names and not creator_alive:
                    _unlink_quietly(name)
                logger.info("slot %s closed", name)
                del self.slots[name]
        for name in names - self.slots.keys():
            if not process_alive(int(name.split("-")[-2])):  # its instance died without cleaning up
                _unlink_quietly(name)
                names.discard(name)
        for name in self.building.keys() - names:
            self.building.pop(name).engine.cancel()  # a running build finishes, unused
        self.refused &= names
        for name in sorted(names - self.slots.keys() - self.building.keys() - self.refused):
            self.open_slot(name)

    def step(self) -> bool:
        """Move what is ready in every slot through its engine; True if anything moved.

        The engines run side by side (``run_batched``): each round steps the model calls of all
        slots that have a whole hop ready as one batch; a slot with less than a hop waits for no one.
        """
        moved = False
        ready: list[tuple[Slot, np.ndarray]] = []
        for slot in list(self.slots.values()):
            slot.segment.beat_server()
            if not self._take_changes(slot):
                moved = True
                continue
            segment = slot.segment
            frames = min(segment.input.available(), segment.output.space())
            if frames:
                view = slot.block[:, :frames]
                segment.input.read_into(view)
                ready.append((slot, view))
        outputs = run_batched([slot.engine.steps(view) for slot, view in ready])
        for (slot, _), output in zip(ready, outputs, strict=True):
            slot.segment.output.write(np.ascontiguousarray(output, dtype=np.float32))
            slot.segment.wake_client()
        return moved or bool(ready)

    def _take_changes(self, slot: Slot) -> bool:
        """Apply the slot's new parameters; False if it had to restart (new program or a corrupt ring)."""
        segment = slot.segment
        if segment.params_generation != slot.params_generation:
            slot.params_generation = segment.params_generation
            params, program = params_of(segment)
            if program != slot.program_index:  # new chain options: a new stream (the plugin crossfades)
                self._restart(slot)
                return False
            slot.engine.set_params(params)
        if segment.input.corrupt or segment.output.corrupt:
            self._restart(slot)
            return False
        return True

    def _restart(self, slot: Slot) -> None:
        name = slot.segment.name
        del self.slots[name]
        _unlink_quietly(name)  # the plugin sees its segment gone and opens a new one

    def run(self) -> int:
        """Serve until no instance is left for ``idle_exit_s``; the doorbell lives as long as this loop."""
        self.doorbell = open_doorbell()
        try:
            return self._loop()
        finally:
            self.builder.shutdown(wait=False, cancel_futures=True)
            if self.doorbell is not None and self.doorbell.still_named():
                self.doorbell.unlink()

    def _loop(self) -> int:
        last_scan = 0.0
        idle_since = time.monotonic()
        while True:
            now = time.monotonic()
            if now - last_scan >= SCAN_INTERVAL_S:
                self._keep_doorbell()
                self.scan()
                last_scan = now
            self.take_built()
            if self.slots or self.building:
                idle_since = now
            elif now - idle_since > self.idle_exit_s:
                logger.info("no plugin instance for %.0f s: exiting", self.idle_exit_s)
                return 0
            # Read the word before looking for work, so a block written meanwhile ends the wait.
            first = next(iter(self.slots.values()), None)
            if self.doorbell is not None:
                seen = self.doorbell.count
                if not self.step():
                    self.doorbell.wait(seen, IDLE_WAIT_S if self.slots else SCAN_INTERVAL_S)
            elif first is not None:  # without a doorbell, instances wake their own segment's word
                seen = first.segment.server_wake_count
                if not self.step():
                    first.segment.wait_server(seen, IDLE_WAIT_S)
            else:
                time.sleep(SCAN_INTERVAL_S)

    def _keep_doorbell(self) -> None:
        """Replace the doorbell if a peer truncated, removed or replaced it (instances then attach the new one)."""
        if self.doorbell is None or (not self.doorbell.broken and self.doorbell.still_named()):
            return
        logger.warning("doorbell %s was truncated, removed or replaced: making a new one", self.doorbell.name)
        self.doorbell = open_doorbell()


def _unlink_quietly(name: str) -> None:
    try:
        (SHM_DIR / name).unlink()
    except FileNotFoundError:
        pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--idle-exit-s", type=float, default=30.0, help="exit after this long without instances")
    parser.add_argument("--device", default="auto", help="where models run: auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument(
        "--threads", type=thread_count, default=1,
        help="torch's intra-op threads (default: 1; more threads spin against the host's audio threads, and the "
             "slots already share one batch)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    lock = acquire_server_lock(runtime_dir())
    if lock is None:
        logger.info("a SpeakUp server already runs for this user")
        return 0
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # this process is the server's alone
    with lock:
        return Server(args.idle_exit_s, args.device, args.threads).run()
