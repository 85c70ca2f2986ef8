"""``ModelHost``: models loaded once per process on one device, and streams of them stepped alone or batched.

A registered model (see ``weights.py``) follows one streaming protocol: ``config.hop_samples``,
``input_sample_rate``, ``output_sample_rate``, ``output_names``, ``latency_samples``,
``initial_state(batch) -> {name: tensor}`` (batch on dim 0, fixed shapes) and
``forward_stream(x (batch, 1, k * hop), state) -> (y (batch, outputs, frames), new_state)``,
with batch rows independent of each other. A stream owns one state row per channel, allocated on
the host's device when the stream is made; ``process_batch`` gathers the rows of several streams
into scratch tensors kept by the host, steps them as one batch and copies the new state back in
place, so a step allocates nothing but its audio in and out and the model's own activations.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speakup_fx.runtime import weights as weights_module
from speakup_fx.runtime.device import resolve_device
from speakup_fx.runtime.weights import WeightsInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSpec:
    """What a stream of a model takes and gives, known without loading its weights."""

    kind: str
    hop_samples: int
    latency_samples: int
    input_sample_rate: int
    output_sample_rate: int
    output_names: tuple[str, ...]

    @classmethod
    def of(cls, kind: str, model: nn.Module) -> StreamSpec:
        return cls(kind, int(model.config.hop_samples), int(model.latency_samples), int(model.input_sample_rate),
                   int(model.output_sample_rate), tuple(model.output_names))


@dataclass(frozen=True)
class _Loaded:
    info: WeightsInfo
    model: nn.Module


_LOADED: dict[tuple, _Loaded] = {}
_LOAD_LOCK = threading.Lock()


def _file_key(path: Path) -> tuple:
    stat = path.stat()
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def _weights_path(kind: str, weights: str | Path | None) -> Path:
    return Path(weights) if weights is not None else weights_module.default_weights(kind)


@functools.lru_cache(maxsize=None)
def shared_host(device: str = "auto") -> ModelHost:
    """The process's host for ``device`` (one per device name; its thread policy leaves torch's setting alone)."""
    return ModelHost(device)


def loaded_model_count() -> int:
    """How many (weights file, device, dtype) models this process holds."""
    return len(_LOADED)


class ModelHost:
    """Serves streams of registered models on ``device``; models load once per process and are shared.

    ``num_threads``: the thread policy. When given, the host sets torch's intra-op thread count to
    it (once, here); when None it leaves the process's setting alone.
    """

    def __init__(self, device: str | None = "auto", num_threads: int | None = None, dtype: torch.dtype = torch.float32):
        self.device = resolve_device(device)
        if not dtype.is_floating_point:
            raise ValueError(f"dtype: expected a floating dtype, got {dtype}")
        self.dtype = dtype
        if num_threads is not None:
            if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
                raise ValueError(f"num_threads: expected a whole number >= 1, got {num_threads!r}")
            torch.set_num_threads(num_threads)
        self._lock = threading.Lock()
        self._scratch: dict[int, dict[str, torch.Tensor]] = {}
        self._pinned: dict[str, torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"ModelHost(device={str(self.device)!r}, dtype={self.dtype})"

    def info(self, kind: str, weights: str | Path | None = None) -> WeightsInfo:
        """What the weights of ``kind`` describe (header only: no tensors loaded)."""
        info = weights_module.read_info(_weights_path(kind, weights))
        if info.kind != kind:
            raise weights_module.WeightsError(f"weights {info.path}: holds a {info.kind!r} model, not {kind!r}")
        return info

    def describe(self, kind: str, weights: str | Path | None = None) -> StreamSpec:
        """Rates, hop, latency and outputs of ``kind``'s streams, from the file's header (no weights loaded)."""
        return StreamSpec.of(kind, weights_module.describe_model(self.info(kind, weights)))

    def model(self, kind: str, weights: str | Path | None = None) -> tuple[WeightsInfo, nn.Module]:
        """The loaded model of ``kind`` on this host's device and dtype (loaded on first use, then shared)."""
        path = _weights_path(kind, weights)
        if not path.is_file():
            raise weights_module.WeightsError(f"weights: no file {path}")
        key = (*_file_key(path), str(self.device), self.dtype)
        with _LOAD_LOCK:
            if key not in _LOADED:
                info = self.info(kind, path)
                _, model = weights_module.load_model(path, self.device)
                _LOADED[key] = _Loaded(info, model.to(self.dtype))
            loaded = _LOADED[key]
        return loaded.info, loaded.model

    def stream(self, kind: str, channels: int = 1, weights: str | Path | None = None) -> ModelStream:
        """A new stream of ``kind`` for ``channels`` channels, its state allocated on the host's device."""
        info, model = self.model(kind, weights)
        return ModelStream(self, info, model, channels)

    @torch.inference_mode()
    def process_batch(self, items: Sequence[tuple[ModelStream, np.ndarray]]) -> list[np.ndarray]:
        """Step several streams of one model as one batch; returns what stepping each alone returns.

        Each block is float32 ``(channels, k * hop)`` at the model's input rate; each result is
        ``(outputs, channels, frames)`` at its output rate. Blocks of different lengths are
        stepped in groups of equal length. A stream may appear once per call.
        """
        if not items:
            return []
        streams = [stream for stream, _ in items]
        if len({id(stream) for stream in streams}) != len(streams):
            raise ValueError("process_batch: a stream appears more than once")
        model = streams[0].model
        for stream, block in items:
            if stream.host is not self:
                raise ValueError("process_batch: a stream belongs to another ModelHost")
            if stream.model is not model:
                raise ValueError("process_batch: streams of different models cannot be batched")
            stream.check_block(block)
        results: list[np.ndarray | None] = [None] * len(items)
        groups: dict[int, list[int]] = {}
        for index, (_, block) in enumerate(items):
            groups.setdefault(block.shape[1], []).append(index)
        with self._lock:
            for indices in groups.values():
                outputs = self._step([items[i] for i in indices])
                for i, output in zip(indices, outputs):
                    results[i] = output
        return results  # type: ignore[return-value]

    def _step(self, items: list[tuple[ModelStream, np.ndarray]]) -> list[np.ndarray]:
        model = items[0][0].model
        x = self._to_device(np.concatenate([block for _, block in items]) if len(items) > 1 else items[0][1])
        if len(items) == 1:
            state = items[0][0].state
        else:
            state = self._gather([stream.state for stream, _ in items], x.shape[0], model)
        y, new_state = model.forward_stream(x.unsqueeze(1), state)
        y = self._to_host(y)
        outputs, start = [], 0
        for stream, _ in items:
            count = stream.channels
            for name, tensor in stream.state.items():
                rows = new_state[name]
                tensor.copy_(rows if count == rows.shape[0] else rows.narrow(0, start, count))
            outputs.append(np.ascontiguousarray(y[start : start + count].transpose(1, 0, 2)))
            start += count
        return outputs

    def _gather(self, states: list[dict[str, torch.Tensor]], rows: int, model: nn.Module) -> dict[str, torch.Tensor]:
        """The streams' states stacked into the host's scratch tensors for ``model`` (grown, never per step)."""
        scratch = self._scratch.get(id(model))
        if scratch is None or next(iter(scratch.values())).shape[0] < rows:
            capacity = max(rows, 2 * next(iter(scratch.values())).shape[0] if scratch else rows)
            scratch = {name: torch.empty((capacity, *t.shape[1:]), dtype=t.dtype, device=t.device)
                       for name, t in states[0].items()}
            self._scratch[id(model)] = scratch
        batch = {}
        for name, buffer in scratch.items():
            batch[name] = torch.cat([state[name] for state in states], out=buffer[:rows])
        return batch

    def _to_device(self, audio: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(audio if audio.flags.writeable else audio.copy())  # torch views only writable arrays
        if self.device.type != "cuda":
            return tensor.to(self.dtype)
        staging = self._pinned_buffer("in", audio.shape)
        staging.copy_(tensor)
        return staging.to(self.device, non_blocking=True).to(self.dtype)

    def _to_host(self, y: torch.Tensor) -> np.ndarray:
        if self.device.type != "cuda":
            return y.float().numpy()
        staging = self._pinned_buffer("out", tuple(y.shape))
        staging.copy_(y, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return staging.numpy().copy()

    def _pinned_buffer(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A pinned host buffer of ``shape`` (a view of one that only grows)."""
        size = int(np.prod(shape))
        buffer = self._pinned.get(name)
        if buffer is None or buffer.numel() < size:
            buffer = torch.empty(max(size, 2 * (buffer.numel() if buffer is not None else 0)), pin_memory=True)
            self._pinned[name] = buffer
        return buffer[:size].view(shape)


class ModelStream:
    """One stream's state of a hosted model: ``process(block)`` steps it alone; ``reset()`` starts it anew."""

    def __init__(self, host: ModelHost, info: WeightsInfo, model: nn.Module, channels: int):
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.host, self.info, self.model, self.channels = host, info, model, channels
        self.spec = StreamSpec.of(info.kind, model)
        self.hop_samples = self.spec.hop_samples
        self.latency_samples = self.spec.latency_samples
        with torch.inference_mode(False), torch.no_grad():
            self.state = {name: t.clone() for name, t in model.initial_state(channels).items()}

    def check_block(self, block: np.ndarray) -> None:
        """``ValueError`` unless ``block`` is float32 ``(channels, k * hop)`` with k >= 1."""
        if not isinstance(block, np.ndarray) or block.dtype != np.float32 or block.ndim != 2:
            raise ValueError("block: expected a float32 numpy array (channels, frames)")
        if block.shape[0] != self.channels or block.shape[1] == 0 or block.shape[1] % self.hop_samples:
            raise ValueError(f"block: expected ({self.channels}, k * {self.hop_samples}) with k >= 1, got {block.shape}")

    def process(self, block: np.ndarray) -> np.ndarray:
        """Step this stream alone: ``(channels, k * hop)`` -> ``(outputs, channels, frames)``."""
        return self.host.process_batch([(self, block)])[0]

    def reset(self) -> None:
        """Forget the past, as if newly made (the state is overwritten in place)."""
        with torch.no_grad():
            for name, tensor in self.model.initial_state(self.channels).items():
                self.state[name].copy_(tensor)
