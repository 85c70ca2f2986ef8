"""``speakup bounce --via-plugin``: the installed SpeakUp VST3, hosted by pedalboard, as a bounce effect.

Users who want exactly what their DAW produces render through the same plugin binary and
model server: the bundle ``speakup install-plugin`` put in the VST3 folder (SpeakUp.vst3 for
stereo files, SpeakUpMono.vst3 for mono), with the preset's program and parameters.
pedalboard renders external plugins offline, so the plugin waits for its server and the
render is exact.

Latency: pedalboard withholds the first frames of a stream itself (as many as it believes the
plugin's latency to be, which it may read before the plugin knows the sample rate). The
effect puts them back as zeros, which they are (the plugin's first ``latency_samples`` output
frames are its zeroed delay line), so every call returns as many frames as it was given,
delayed by the latency the plugin reports; the bounce pipeline trims that as it does for the
Python effect.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from speakup_fx.params import PARAM_SPECS
from speakup_fx.presets import Preset, list_presets, load_preset
from speakup_fx.server.install import default_vst3_folder

logger = logging.getLogger(__name__)

BUNDLE_NAMES = {1: "SpeakUpMono.vst3", 2: "SpeakUp.vst3"}
"""The installed bundle for each channel count."""


class PluginEffect:
    """The installed SpeakUp VST3 running ``preset``'s program and parameters (see the module docstring).

    ``ValueError`` when the preset is not one of the plugin's programs, changes a chain option
    of that program (the plugin cannot), or when no bundle is installed in ``vst3_folder``.
    """

    converts_sample_rate = False

    def __init__(self, preset: Preset, vst3_folder: Path | None = None) -> None:
        if preset.name not in list_presets():
            raise ValueError(
                f"--via-plugin: preset {preset.name!r} is not a program of the plugin; "
                f"its programs are the shipped presets: {', '.join(list_presets())}"
            )
        program_options = load_preset(preset.name).options
        # `loudness` is the bounce's own pass, not part of the plugin's chain.
        changed = [
            f"{field.name}={getattr(preset.options, field.name)!r}"
            for field in dataclasses.fields(program_options)
            if field.name != "loudness" and getattr(preset.options, field.name) != getattr(program_options, field.name)
        ]
        if changed:
            raise ValueError(
                f"--via-plugin: the plugin runs program {preset.name!r} as shipped; "
                f"chain options cannot be changed ({', '.join(changed)})"
            )
        self._folder = vst3_folder if vst3_folder is not None else default_vst3_folder()
        if not any((self._folder / name).is_dir() for name in BUNDLE_NAMES.values()):
            raise ValueError(
                f"--via-plugin: no SpeakUp VST3 plugin is installed in {self._folder}; build it "
                "(cmake -DSPEAKUP_BUILD_PLUGIN=ON) and run: speakup install-plugin SpeakUp.vst3 SpeakUpMono.vst3"
            )
        self._preset = preset
        self._plugins: dict[int, Any] = {}  # pedalboard ExternalPlugin per channel count
        self._plugin: Any = None  # the variant of the current stream
        self._new_stream = True

    @property
    def latency_samples(self) -> int:
        """The latency the plugin reports at the rate it last processed (0 before any audio)."""
        return int(self._plugin.reported_latency_samples) if self._plugin is not None else 0

    def process(
        self, input_array: np.ndarray, sample_rate: float, buffer_size: int = 8192, reset: bool = False
    ) -> np.ndarray:
        """Stream ``(channels, frames)`` float32 audio through the plugin; returns as many frames, delayed."""
        if reset:
            self.reset()
        plugin = self._variant(input_array.shape[0])
        if self._new_stream or plugin is not self._plugin:
            plugin.reset()
            self._plugin, self._new_stream = plugin, False
        output = plugin.process(input_array, sample_rate, buffer_size=buffer_size, reset=False)
        withheld = input_array.shape[1] - output.shape[1]
        if withheld:
            output = np.concatenate([np.zeros((output.shape[0], withheld), np.float32), output], axis=1)
        return output

    __call__ = process

    def reset(self) -> None:
        """The next call starts a new stream (the plugin clears its state)."""
        self._new_stream = True

    def _variant(self, channels: int) -> Any:
        """The plugin for ``channels``, loaded once with the program and parameters set."""
        if channels not in BUNDLE_NAMES:
            raise ValueError(f"--via-plugin: the plugin takes mono or stereo audio, not {channels} channels")
        if channels not in self._plugins:
            self._plugins[channels] = self._load(self._folder / BUNDLE_NAMES[channels])
        return self._plugins[channels]

    def _load(self, bundle: Path) -> Any:
        import pedalboard

        if not bundle.is_dir():
            raise ValueError(f"--via-plugin: {bundle} is not installed (speakup install-plugin {bundle.name})")
        plugin = pedalboard.load_plugin(str(bundle))
        plugin.current_program = self._preset.name
        parameters = plugin.parameters
        for name, value in self._preset.parameter_values().items():
            # The one plain <-> normalised mapping, the VST3's too; pedalboard's own setter rounds.
            parameters[name].raw_value = PARAM_SPECS[name].to_normalised(value)
        logger.info("rendering through %s (program %s)", bundle, self._preset.name)
        return plugin


def via_plugin_effect(preset: str | Path, overrides: dict[str, object], device: str | None = None) -> PluginEffect:
    """``bounce --via-plugin``'s effect: ``preset`` (a name or .toml file) with ``overrides``; ``ValueError`` as ``PluginEffect``.

    ``device`` must be None: the model server chooses its device, not the bounce.
    """
    if device is not None:
        raise ValueError("--device does not apply to --via-plugin: the plugin's model server chooses its device")
    return PluginEffect(load_preset(preset).with_overrides(overrides))
