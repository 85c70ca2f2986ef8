"""``SpeakUp`` and ``Board``: the pedalboard-compatible surface.

Both are called like a pedalboard plugin: ``effect(input_array, sample_rate,
buffer_size=8192, reset=True)``. Input is 1-D mono or 2-D, either
``(channels, frames)`` or ``(frames, channels)`` (told apart as pedalboard
does: the shorter side is the channels, helped by the last call's channel
count), float32 or float64; output is float32 in the same layout.

``reset=True`` resets first and returns output aligned with the input (the
latency is compensated by feeding ``latency_samples`` extra zeros and dropping
as many leading frames, as pedalboard does). ``reset=False`` streams: state
carries over between calls, every call returns as many frames as it was
given, and the first ``latency_samples`` frames of a stream are the delay;
feeding zeros flushes the tail.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterable, Iterator, MutableSequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from speakup_fx.dsp.latency import aligned_blocks
from speakup_fx.dsp.resample import check_sample_rate
from speakup_fx.params import PARAM_SPECS, ChainOptions, default_params
from speakup_fx.runtime.device import check_device
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE

if TYPE_CHECKING:
    from speakup_fx.engine import Engine
    from speakup_fx.presets import Preset

DEFAULT_BUFFER_SIZE = 8192
"""pedalboard's default ``buffer_size``."""

MIDI_CC_MAX = 127

_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(ChainOptions))


def check_buffer_size(buffer_size: object) -> int:
    """Return ``buffer_size`` as an int >= 1, or raise ``ValueError`` naming it."""
    if isinstance(buffer_size, bool) or not isinstance(buffer_size, (int, np.integer)) or buffer_size < 1:
        raise ValueError(f"buffer_size: expected a whole number of frames >= 1, got {buffer_size!r}")
    return int(buffer_size)


class _Layout:
    """How the caller's array holds channels, so the output can be handed back the same way."""

    MONO = "mono"  # 1-D
    PLANAR = "planar"  # (channels, frames)
    INTERLEAVED = "interleaved"  # (frames, channels)


def _detect_layout(shape: tuple[int, ...], channels_hint: int | None, last_layout: str | None) -> str:
    """pedalboard's channel-layout rule for ``shape`` (with its hint and cached-layout fallbacks)."""
    if len(shape) == 1:
        return _Layout.MONO
    if len(shape) != 2:
        raise ValueError(f"input_array must be 1-D (mono) or 2-D (channels, frames), got {len(shape)} dimensions")
    rows, columns = shape
    if channels_hint is not None and not rows == columns > 1:
        if rows == channels_hint:
            return _Layout.PLANAR
        if columns == channels_hint:
            return _Layout.INTERLEAVED
    if rows == 0 and columns > 0:
        return _Layout.INTERLEAVED
    if columns == 0 and rows > 0:
        return _Layout.PLANAR
    if columns < rows:
        return _Layout.INTERLEAVED
    if rows < columns or rows == 1:
        return _Layout.PLANAR
    if last_layout is not None:
        return last_layout
    raise ValueError(
        f"input_array: cannot tell channels from frames in shape {shape}; "
        "pass (channels, frames) with more frames than channels first"
    )


def _float_audio(input_array: Any) -> np.ndarray:
    """``input_array`` as an array (not copied); ``TypeError`` unless it is float32 or float64."""
    array = np.asarray(input_array)
    if array.dtype not in (np.float32, np.float64):
        raise TypeError(f"input_array must be float32 or float64 audio, got {array.dtype}")
    return array


def _planar_view(input_array: Any, channels_hint: int | None, last_layout: str | None) -> tuple[np.ndarray, str]:
    """A ``(channels, frames)`` view of ``input_array`` (never copied, never written) and its layout."""
    array = _float_audio(input_array)
    layout = _detect_layout(array.shape, channels_hint, last_layout)
    planar = array[None, :] if layout == _Layout.MONO else array.T if layout == _Layout.INTERLEAVED else array
    return planar, layout


def _allocate_output(channels: int, frames: int, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """A C-contiguous float32 array in ``layout`` and its ``(channels, frames)`` view to write into."""
    if layout == _Layout.MONO:
        out = np.empty(frames, np.float32)
        return out, out[None, :]
    if layout == _Layout.INTERLEAVED:
        out = np.empty((frames, channels), np.float32)
        return out, out.T
    out = np.empty((channels, frames), np.float32)
    return out, out


class Param:
    """A parameter attribute of ``SpeakUp``: reading gives its value, setting validates it and schedules the change."""

    def __init__(self, name: str) -> None:
        spec = PARAM_SPECS[name]
        self.name = name
        self.__doc__ = f"{spec.help} [{spec.minimum}, {spec.maximum}]"

    @overload
    def __get__(self, effect: None, owner: type) -> Param: ...
    @overload
    def __get__(self, effect: SpeakUp, owner: type) -> float: ...
    def __get__(self, effect: SpeakUp | None, owner: type) -> float | Param:
        return self if effect is None else effect._params[self.name]

    def __set__(self, effect: SpeakUp, value: float) -> None:
        effect._set_param(self.name, value)


class SpeakUp:
    """The SpeakUp FX speech enhancer as a pedalboard-style effect.

    ``SpeakUp(preset=None, **overrides)``: ``preset`` is a preset name, a path
    to a preset file or a ``Preset``; ``overrides`` are parameter names (see
    ``speakup_fx.params.PARAMS``) or ``ChainOptions`` fields; ``device``
    (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``) is where the neural engine's model runs,
    through the process's shared ``ModelHost`` for that device; ``enhancer_weights`` is a weights
    file of kind ``enhancer`` (e.g. one you trained, ``speakup train --export``) that the neural
    engine runs instead of the shipped one (checked when the effect is made). Parameters are attributes
    (validated; a change reaches the engine at the next block and is smoothed there); setting
    one that this chain does not act on raises ``ValueError``. ``options`` is fixed for the life
    of the effect.
    """

    converts_sample_rate = True
    """``process`` takes ``output_sample_rate=`` (see ``speakup_fx.bounce``)."""

    denoise_amount = Param("denoise_amount")
    dereverb_amount = Param("dereverb_amount")
    highpass_hz = Param("highpass_hz")
    dehum_amount = Param("dehum_amount")
    expander_threshold_db = Param("expander_threshold_db")
    expander_ratio = Param("expander_ratio")
    expander_range_db = Param("expander_range_db")
    low_mid_cut_db = Param("low_mid_cut_db")
    presence_db = Param("presence_db")
    air_db = Param("air_db")
    leveler_amount = Param("leveler_amount")
    compressor_threshold_db = Param("compressor_threshold_db")
    compressor_ratio = Param("compressor_ratio")
    limiter_ceiling_dbtp = Param("limiter_ceiling_dbtp")
    target_lufs = Param("target_lufs")
    output_gain_db = Param("output_gain_db")
    mix = Param("mix")

    __slots__ = (
        "_options", "_params", "_pending", "_midi_map", "_device", "_engine", "_streaming", "_channels_hint",
        "_layout_hint", "_lock", "_pending_lock", "_offered", "_enhancer_weights",
    )

    def __init__(
        self, preset: str | Preset | None = None, *, device: str = "auto", enhancer_weights: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> None:
        from speakup_fx.presets import Preset, load_preset

        device = check_device(device)
        if preset is None:
            preset = Preset(name="default")
        elif not isinstance(preset, Preset):
            preset = load_preset(preset)
        configured = preset.with_overrides(overrides)
        self._options = configured.options
        self._params = configured.parameter_values()
        self._pending: dict[str, float] = {}  # changes the engine has not seen yet
        self._midi_map = dict(configured.midi_map)
        self._device = device
        self._enhancer_weights = None if enhancer_weights is None else os.fspath(enhancer_weights)
        self._engine: Engine | None = None
        self._streaming = False  # frames have gone through since the last reset
        self._channels_hint: int | None = None
        self._layout_hint: str | None = None
        self._lock = threading.Lock()  # one call at a time, as pedalboard locks a plugin
        self._pending_lock = threading.Lock()
        self._offered = self._engine_for(1, ENGINE_SAMPLE_RATE).offered_params | (
            {"target_lufs"} if self._options.loudness else frozenset()
        )
        unused = sorted(name for name in overrides if name in PARAM_SPECS and name not in self._offered)
        if unused:
            raise ValueError(f"{', '.join(unused)}: not used by this chain ({self._describe_chain()})")

    @property
    def device(self) -> str:
        """Where the neural engine's model runs (as asked: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``)."""
        return self._device

    @property
    def offered_params(self) -> frozenset[str]:
        """The parameters this effect's chain acts on (``target_lufs`` also when bounce normalises loudness)."""
        return self._offered

    @property
    def options(self) -> ChainOptions:
        """Which engine runs and which stages are on (fixed at construction)."""
        return self._options

    @property
    def midi_map(self) -> dict[int, str]:
        """MIDI CC number -> parameter name, from the preset (a copy)."""
        return dict(self._midi_map)

    @property
    def latency_samples(self) -> int:
        """Delay of the output in frames at the rate last processed or prepared (48 kHz before any); loads no model."""
        with self._lock:
            if self._engine is None:
                self._engine_for(1, ENGINE_SAMPLE_RATE)
            return self._engine.latency_samples

    def parameter_delay_s(self, name: str) -> float:
        """Seconds between the input and where parameter ``name`` acts in the stream last processed or prepared.

        A change made when the input has reached time ``t`` is heard at ``t - delay`` in the
        latency-aligned output (see ``Engine.param_delay_s``); offline automation makes it that much
        earlier to land on time.
        """
        if name not in PARAM_SPECS:
            raise ValueError(f"{name}: not a parameter (known: {', '.join(PARAM_SPECS)})")
        with self._lock:
            engine = self._engine if self._engine is not None else self._engine_for(1, ENGINE_SAMPLE_RATE)
            return engine.param_delay_s(name)

    def prepare(self, sample_rate: float, channels: int, output_sample_rate: float | None = None) -> int:
        """Allocate everything for a stream of ``channels`` at ``sample_rate`` (loads the model, if any) before audio.

        Returns ``latency_samples`` for that stream (what a plugin host asks at activation).
        """
        sample_rate = check_sample_rate(sample_rate)
        output_rate = check_sample_rate(output_sample_rate) if output_sample_rate is not None else sample_rate
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        with self._lock:
            engine = self._engine_for(channels, sample_rate, output_rate)
            engine.prepare()
            return engine.latency_samples

    def process(
        self,
        input_array: np.ndarray,
        sample_rate: float,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        reset: bool = True,
        *,
        output_sample_rate: float | None = None,
    ) -> np.ndarray:
        """Enhance ``input_array``; see the module docstring for shapes and ``reset``.

        ``output_sample_rate`` (a SpeakUp extension; default: ``sample_rate``) makes the engine
        resample on its way out, once: the output then has ``ceil(frames * output_rate / sample_rate)``
        frames per stream. Working memory stays bounded whatever the length (blocks of
        ``buffer_size`` are converted and processed one at a time, into the one output array).
        """
        sample_rate = check_sample_rate(sample_rate)
        output_rate = check_sample_rate(output_sample_rate) if output_sample_rate is not None else sample_rate
        buffer_size = check_buffer_size(buffer_size)
        audio, layout = _planar_view(input_array, self._channels_hint, self._layout_hint)
        channels, frames = audio.shape
        if channels not in (1, 2):
            raise ValueError(f"input_array has {channels} channels; SpeakUp takes mono or stereo")
        if frames == 0 and reset:
            raise ValueError("input_array is empty (no frames)")
        for start in range(0, frames, buffer_size):
            if not np.isfinite(audio[:, start : start + buffer_size]).all():
                raise ValueError("input_array contains NaN or infinite samples")
        with self._lock:
            if reset:
                self._reset()
            elif self._streaming and self._engine is not None and (
                (channels, sample_rate, output_rate)
                != (self._engine.channels, self._engine.sample_rate, self._engine.output_sample_rate)
            ):
                raise ValueError(
                    f"reset=False continues a stream of {self._engine.channels} channel(s) at "
                    f"{self._engine.sample_rate} Hz, got {channels} channel(s) at {sample_rate} Hz; "
                    "call reset() or pass reset=True to start a new stream"
                )
            engine = self._engine_for(channels, sample_rate, output_rate)
            self._channels_hint, self._layout_hint = channels, layout
            wanted = engine.output_frames(engine.frames_in + frames) - engine.output_frames(engine.frames_in)
            result, out = _allocate_output(channels, wanted, layout)

            def step(block: np.ndarray) -> np.ndarray:
                self._send_pending(engine)
                return engine.process(block)

            blocks = (np.ascontiguousarray(audio[:, start : start + buffer_size], dtype=np.float32)
                      for start in range(0, frames, buffer_size))
            produced = (aligned_blocks(step, engine.latency_samples, blocks, channels, output_frames=engine.output_frames)
                        if reset else map(step, blocks))
            written = 0
            for block in produced:
                out[:, written : written + block.shape[1]] = block
                written += block.shape[1]
            if written != wanted:
                raise RuntimeError(f"engine returned {written} of {wanted} frames (internal error)")
            self._streaming = self._streaming or frames > 0
        return result

    __call__ = process

    def reset(self) -> None:
        """Clear all streaming state; the next call starts a new stream at the current parameter values (no glide)."""
        with self._lock:
            self._reset()

    def handle_midi(self, message: Any) -> None:
        """Apply a MIDI control change through the preset's MIDI map (0..127 over the parameter's range).

        Other messages and unmapped controllers are ignored.
        """
        if getattr(message, "type", None) != "control_change" or message.control not in self._midi_map:
            return
        spec = PARAM_SPECS[self._midi_map[message.control]]
        setattr(self, spec.name, spec.from_normalised(message.value / MIDI_CC_MAX))

    def __repr__(self) -> str:
        defaults, default_options = default_params(), ChainOptions()
        changed = [f"{k}={v!r}" for k, v in self._params.items() if v != defaults[k]]
        for name in _OPTION_NAMES:
            if getattr(self._options, name) != getattr(default_options, name):
                changed.append(f"{name}={getattr(self._options, name)!r}")
        if self._enhancer_weights is not None:
            changed.append(f"enhancer_weights={self._enhancer_weights!r}")
        return f"SpeakUp({', '.join(changed)})"

    def _reset(self) -> None:
        if self._engine is not None:
            self._send_pending(self._engine)  # a reset engine starts at its parameters' targets
            self._engine.reset()
        self._streaming = False

    def _engine_for(self, channels: int, sample_rate: int, output_sample_rate: int | None = None) -> Engine:
        """The engine for this channel count and these rates, built anew when they change (loads no model)."""
        output_sample_rate = output_sample_rate or sample_rate
        wanted = (channels, sample_rate, output_sample_rate)
        engine = self._engine
        if engine is None or (engine.channels, engine.sample_rate, engine.output_sample_rate) != wanted:
            from speakup_fx.engine import Engine
            from speakup_fx.stages.chain import build_chain

            host = None
            if self._options.engine == "neural" or self._options.bandwidth_extension:
                from speakup_fx.runtime.host import shared_host

                host = shared_host(self._device)
            with self._pending_lock:
                self._pending.clear()
                stages = build_chain(channels, self._options, self._params, host, self._enhancer_weights)
                self._engine = Engine(channels, sample_rate, stages, self._params, output_sample_rate)
        return self._engine

    def _describe_chain(self) -> str:
        off = [name for name in _OPTION_NAMES if name != "engine" and getattr(self._options, name) is False]
        return f"engine {self._options.engine!r}" + (f", off: {', '.join(off)}" if off else "")

    def _send_pending(self, engine: Engine) -> None:
        with self._pending_lock:
            changes, self._pending = self._pending, {}
        if changes:
            engine.set_params(changes)

    def _set_param(self, name: str, value: float) -> None:
        value = PARAM_SPECS[name].validate(value)
        if name not in self._offered:
            raise ValueError(f"{name}: not used by this chain ({self._describe_chain()})")
        with self._pending_lock:
            self._params[name] = value
            self._pending[name] = value


def _pedalboard_plugin_type() -> type:
    import pedalboard

    return pedalboard.Plugin


class Board(MutableSequence):
    """A list-like, nestable chain of pedalboard plugins, ``SpeakUp`` effects and ``Board`` s.

    Called like one plugin; each item processes the whole input in turn with
    the same ``buffer_size`` and ``reset`` (so each compensates its own latency
    when ``reset=True``).
    """

    def __init__(self, plugins: Iterable[Any] = ()) -> None:
        self._plugins = [self._checked(plugin) for plugin in plugins]

    @staticmethod
    def _checked(plugin: Any) -> Any:
        if isinstance(plugin, (SpeakUp, Board, _pedalboard_plugin_type())):
            return plugin
        raise TypeError(
            "Board items must be pedalboard plugins, SpeakUp effects or Boards, "
            f"got {type(plugin).__name__}: {plugin!r}"
        )

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return Board(self._plugins[index])
        return self._plugins[index]

    def __setitem__(self, index: int | slice, value: Any) -> None:
        if isinstance(index, slice):
            self._plugins[index] = [self._checked(plugin) for plugin in value]
        else:
            self._plugins[index] = self._checked(value)

    def __delitem__(self, index: int | slice) -> None:
        del self._plugins[index]

    def __len__(self) -> int:
        return len(self._plugins)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._plugins)

    def insert(self, index: int, value: Any) -> None:
        self._plugins.insert(index, self._checked(value))

    @property
    def latency_samples(self) -> int:
        """Sum of the items' reported latencies (pedalboard built-ins do not report theirs and count as 0)."""
        total = 0
        for plugin in self._plugins:
            if isinstance(plugin, (SpeakUp, Board)):
                total += plugin.latency_samples
            else:
                total += getattr(plugin, "reported_latency_samples", 0)
        return total

    def process(
        self,
        input_array: np.ndarray,
        sample_rate: float,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        reset: bool = True,
    ) -> np.ndarray:
        """Run every item in turn; same call semantics as ``SpeakUp.process``."""
        check_sample_rate(sample_rate)
        check_buffer_size(buffer_size)
        _check_no_duplicates(self)
        audio = _float_audio(input_array)
        if audio.ndim not in (1, 2):
            raise ValueError(f"input_array must be 1-D (mono) or 2-D (channels, frames), got {audio.ndim} dimensions")
        audio = audio.astype(np.float32)  # a copy: items never see the caller's array
        for plugin in self._plugins:
            audio = plugin.process(audio, sample_rate, buffer_size=buffer_size, reset=reset)
        return audio

    __call__ = process

    def reset(self) -> None:
        """Reset every item."""
        for plugin in self._plugins:
            plugin.reset()

    def __repr__(self) -> str:
        return f"Board({self._plugins!r})"


def _leaves(plugin: Any) -> Iterator[Any]:
    """``plugin`` itself, or the plugins inside it (recursively) if it is a container."""
    import pedalboard

    if isinstance(plugin, (Board, pedalboard.PluginContainer)):
        for inner in plugin:
            yield from _leaves(inner)
    else:
        yield plugin


def _check_no_duplicates(board: Board) -> None:
    seen: set[int] = set()
    for plugin in _leaves(board):
        if id(plugin) in seen:
            raise ValueError(f"{plugin!r} appears more than once in the Board; use a separate instance for each place")
        seen.add(id(plugin))
