"""Native core of SpeakUp FX: lock-free SPSC float32 ring buffer and POSIX shared memory."""

from typing import Final

import numpy as np
import numpy.typing as npt

RING_MAGIC: Final[int]
"""First 4 bytes of every ring header (bytes ``b"SURB"``)."""
RING_PROTOCOL_VERSION: Final[int]
"""Layout version written in every ring header and checked on attach."""
RING_ALIGNMENT_BYTES: Final[int]
"""Rings start at offsets that are multiples of this (64)."""

class SharedMemory:
    """A POSIX shared-memory segment (mode 0600) mapped read-write.

    Exposes the buffer protocol (``memoryview(shm)``, ``np.frombuffer(shm, np.uint8)``).
    The mapping lives as long as this object and every ring or view placed in it.
    """

    @staticmethod
    def create(name: str, size_bytes: int) -> SharedMemory:
        """Create and map a new zero-filled segment; ``FileExistsError`` if ``name`` is taken."""
    @staticmethod
    def attach(name: str) -> SharedMemory:
        """Map an existing segment; ``FileNotFoundError`` if there is none."""
    @property
    def name(self) -> str:
        """The segment's name, without the leading ``/``."""
    @property
    def size_bytes(self) -> int: ...
    @property
    def broken(self) -> bool:
        """True once a peer truncated the segment (the mapping now reads zeros)."""
    def unlink(self) -> None:
        """Remove the segment's name; existing mappings stay valid."""
    def __buffer__(self, flags: int, /) -> memoryview: ...

class RingBuffer:
    """Lock-free single-producer/single-consumer ring of float32 frames.

    One thread (or process) writes, one reads; blocks are float32 ``(channels, frames)``
    arrays with contiguous frames. Nothing is converted: a wrong dtype raises
    ``TypeError``, a wrong shape, channel count or layout raises ``ValueError``.
    """

    def __init__(self, channels: int, capacity_frames: int) -> None: ...
    @property
    def channels(self) -> int: ...
    @property
    def capacity_frames(self) -> int: ...
    def write(self, block: npt.NDArray[np.float32]) -> int:
        """Write ``min(frames, space())`` frames of ``block``; return the frames written."""
    def read(self, max_frames: int) -> npt.NDArray[np.float32]:
        """Read ``min(max_frames, available())`` frames into a new ``(channels, n)`` array."""
    def read_into(self, out: npt.NDArray[np.float32]) -> int:
        """Read up to ``out.shape[1]`` frames into ``out``; return the frames read."""
    def available(self) -> int:
        """Frames ready to read."""
    def space(self) -> int:
        """Frames that fit."""
    def clear(self) -> None:
        """Discard every available frame (a consumer-side operation)."""
    @staticmethod
    def required_bytes(channels: int, capacity_frames: int) -> int:
        """Bytes a ring of this shape occupies in shared memory (a multiple of 64)."""
    @staticmethod
    def create_in(
        shm: SharedMemory, offset_bytes: int, channels: int, capacity_frames: int
    ) -> RingBuffer:
        """Create an empty ring in ``shm`` at ``offset_bytes`` (a multiple of 64)."""
    @staticmethod
    def attach_in(shm: SharedMemory, offset_bytes: int) -> RingBuffer:
        """Attach to the ring created in ``shm`` at ``offset_bytes``; ``ValueError`` if invalid."""
    @property
    def corrupt(self) -> bool:
        """True while the counters claim more frames than the ring holds (a peer wrote them)."""

class BridgeError(ValueError):
    """A bridge segment is foreign (wrong magic), of another protocol version, or malformed."""

BRIDGE_MAGIC: Final[int]
"""First 4 bytes of every bridge segment (bytes ``b"SUBG"``)."""
BRIDGE_PROTOCOL_VERSION: Final[int]

def bridge_runtime_dir() -> str:
    """``$XDG_RUNTIME_DIR/speakup`` or ``/tmp/speakup-u<euid>``: the server's lock and log live there."""

def bridge_segment_prefix() -> str:
    """``"speakup-u<euid>-<runtime dir hash>-"``: the prefix of this user's (and runtime dir's) segments."""

class BridgeSegment:
    """One plugin instance's shared-memory segment (see ``native/include/speakup/bridge.hpp``).

    The plugin creates it and writes ``input``; the server attaches and writes ``output``.
    Geometry is validated and copied once at create/attach; a peer that rewrites or
    truncates the segment cannot make either side touch memory outside it.
    """

    @staticmethod
    def create(
        name: str,
        channels: int,
        sample_rate_hz: int,
        block_frames: int,
        param_count: int,
        wet_latency_samples: int,
        ring_capacity_frames: int,
    ) -> BridgeSegment:
        """Create a segment (mode 0600); ``BridgeError`` for a geometry out of range."""
    @staticmethod
    def attach(name: str) -> BridgeSegment:
        """Attach; ``BridgeError`` (foreign/malformed), ``ValueError`` (owner/mode), ``FileNotFoundError``."""
    @property
    def name(self) -> str: ...
    @property
    def channels(self) -> int: ...
    @property
    def sample_rate_hz(self) -> int: ...
    @property
    def block_frames(self) -> int: ...
    @property
    def param_count(self) -> int: ...
    @property
    def wet_latency_samples(self) -> int: ...
    @property
    def ring_capacity_frames(self) -> int: ...
    @property
    def total_bytes(self) -> int: ...
    @property
    def creator_pid(self) -> int: ...
    @property
    def broken(self) -> bool:
        """True once a peer truncated the segment (the mapping now reads zeros)."""
    @property
    def input(self) -> RingBuffer:
        """Plugin writes, server reads."""
    @property
    def output(self) -> RingBuffer:
        """Server writes, plugin reads."""
    def params(self) -> npt.NDArray[np.float32]: ...
    def set_param(self, index: int, value: float) -> None: ...
    @property
    def params_generation(self) -> int: ...
    def beat_client(self) -> None: ...
    def beat_server(self) -> None: ...
    @property
    def client_heartbeat(self) -> int: ...
    @property
    def server_heartbeat(self) -> int: ...
    server_pid: int
    def wake_server(self) -> None: ...
    def wake_client(self) -> None: ...
    @property
    def server_wake_count(self) -> int: ...
    @property
    def client_wake_count(self) -> int: ...
    def wait_server(self, seen: int, timeout_s: float) -> bool:
        """Sleep while ``server_wake_count == seen``, at most ``timeout_s``; True if it changed."""
    def wait_client(self, seen: int, timeout_s: float) -> bool:
        """Sleep while ``client_wake_count == seen``, at most ``timeout_s``; True if it changed."""
    def unlink(self) -> None: ...
