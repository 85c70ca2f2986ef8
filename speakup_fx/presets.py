"""Presets: named parameter values, chain options and an optional MIDI-CC map, stored as TOML.

One schema: ``name`` and ``description`` (strings), ``[params]`` (names and
ranges from ``speakup_fx.params.PARAM_SPECS``; only what differs from the
defaults), ``[options]`` (fields of ``ChainOptions``) and ``[midi]`` (CC number
0..127 -> parameter name). Unknown keys and bad values raise ``ValueError``
naming the dotted key, e.g. ``podcast.params.denoise_amoun: unknown parameter``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from speakup_fx.atomic import atomic_write
from speakup_fx.params import PARAM_SPECS, ChainOptions, default_params

_PACKAGE_DIR = Path(__file__).resolve().parent
PRESETS_DIR = next(
    (d for d in (_PACKAGE_DIR / "presets", _PACKAGE_DIR.parent / "presets") if d.is_dir()), _PACKAGE_DIR / "presets"
)
"""The shipped presets, one ``NAME.toml`` each: inside the installed wheel, or the checkout's ``presets/``."""

_OPTION_FIELDS = {f.name: f for f in dataclasses.fields(ChainOptions)}
_TOP_LEVEL_KEYS = ("name", "description", "params", "options", "midi")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


@dataclass(frozen=True)
class Preset:
    """A named set of parameter values (only those that differ from the defaults), chain options and MIDI map."""

    name: str
    description: str = ""
    params: dict[str, float] = field(default_factory=dict)
    options: ChainOptions = field(default_factory=ChainOptions)
    midi_map: dict[int, str] = field(default_factory=dict)

    def parameter_values(self) -> dict[str, float]:
        """Every parameter: the defaults updated with this preset's values."""
        return default_params() | self.params

    def with_overrides(self, overrides: Mapping[str, object]) -> Preset:
        """A copy with ``overrides`` (parameter or option names -> values; strings are parsed) applied.

        Raises ``ValueError`` naming the key, e.g. ``override denoise_amoun: unknown parameter or option``.
        """
        params = dict(self.params)
        options: dict[str, object] = {}
        for key, value in overrides.items():
            where = f"override {key}"
            if key in PARAM_SPECS:
                params[key] = _parse_param(where, key, value)
            elif key in _OPTION_FIELDS:
                options[key] = _parse_option(where, key, value)
            else:
                raise ValueError(f"{where}: unknown parameter or option")
        try:
            new_options = dataclasses.replace(self.options, **options)
        except ValueError as error:
            raise ValueError(f"override {error}") from None
        return dataclasses.replace(self, params=params, options=new_options)


def list_presets() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(path.stem for path in PRESETS_DIR.glob("*.toml"))


def load_preset(name_or_path: str | os.PathLike[str]) -> Preset:
    """Load a shipped preset by name, or a preset file by path (anything ending in ``.toml`` or naming a file)."""
    text = os.fspath(name_or_path)
    path = Path(text)
    if not (text.endswith(".toml") or os.sep in text or path.is_file()):
        path = PRESETS_DIR / f"{text}.toml"
        if not path.is_file():
            raise ValueError(f"unknown preset {text!r}; available: {', '.join(list_presets())}")
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ValueError(f"{path}: cannot read preset: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        bad_byte = error.object[error.start]
        raise ValueError(f"{path}: not UTF-8 text (byte {bad_byte:#04x} at offset {error.start})") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:
        raise ValueError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None
    return preset_from_dict(data, key_prefix=path.stem)


def preset_from_dict(data: Mapping[str, object], key_prefix: str) -> Preset:
    """Validate a parsed preset; errors name ``key_prefix.section.key``."""
    for key in data:
        if key not in _TOP_LEVEL_KEYS:
            raise ValueError(f"{key_prefix}.{key}: unknown key (expected one of {', '.join(_TOP_LEVEL_KEYS)})")
    name = data.get("name", key_prefix)
    description = data.get("description", "")
    for key, value in (("name", name), ("description", description)):
        if not isinstance(value, str):
            raise ValueError(f"{key_prefix}.{key}: expected a string, got {value!r}")
    if not name.strip():
        raise ValueError(f"{key_prefix}.name: must not be empty")
    params: dict[str, float] = {}
    for key, value in _table(data, "params", key_prefix).items():
        if key not in PARAM_SPECS:
            raise ValueError(f"{key_prefix}.params.{key}: unknown parameter")
        params[key] = _parse_param(f"{key_prefix}.params.{key}", key, value)
    option_values: dict[str, str | bool] = {}
    for key, value in _table(data, "options", key_prefix).items():
        if key not in _OPTION_FIELDS:
            raise ValueError(f"{key_prefix}.options.{key}: unknown option")
        option_values[key] = _parse_option(f"{key_prefix}.options.{key}", key, value, strings=False)
    options = ChainOptions(**option_values)
    midi_map = {
        _parse_cc(f"{key_prefix}.midi.{key}", key, target): target
        for key, target in _table(data, "midi", key_prefix).items()
    }
    return Preset(name=name, description=description, params=params, options=options, midi_map=midi_map)


def preset_to_dict(preset: Preset) -> dict[str, object]:
    """The TOML-ready form of ``preset``: options and params only where they differ from the defaults."""
    defaults = ChainOptions()
    options = {
        key: getattr(preset.options, key)
        for key in _OPTION_FIELDS
        if getattr(preset.options, key) != getattr(defaults, key)
    }
    data: dict[str, object] = {"name": preset.name, "description": preset.description}
    for section, table in (
        ("params", dict(preset.params)),
        ("options", options),
        ("midi", {str(cc): target for cc, target in sorted(preset.midi_map.items())}),
    ):
        if table:
            data[section] = table
    return data


def save_preset(preset: Preset, path: str | os.PathLike[str]) -> None:
    """Write ``preset`` as TOML to ``path`` (atomically)."""
    with atomic_write(path) as temporary, temporary.open("wb") as file:
        tomli_w.dump(preset_to_dict(preset), file)


def _table(data: Mapping[str, object], section: str, key_prefix: str) -> Mapping[str, object]:
    table = data.get(section, {})
    if not isinstance(table, Mapping):
        raise ValueError(f"{key_prefix}.{section}: expected a table, got {table!r}")
    return table


def _parse_param(where: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    try:
        return PARAM_SPECS[key].validate(value)
    except ValueError as error:
        raise ValueError(f"{where}: {str(error).removeprefix(f'{key}: ')}") from None


def _parse_option(where: str, key: str, value: object, strings: bool = True) -> str | bool:
    if key == "engine":
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        try:
            ChainOptions(engine=value)
        except ValueError as error:
            raise ValueError(f"{where}: {str(error).removeprefix('engine: ')}") from None
        return value
    if isinstance(value, bool):
        return value
    if strings and isinstance(value, str) and value.lower() in _TRUE_WORDS + _FALSE_WORDS:
        return value.lower() in _TRUE_WORDS
    raise ValueError(f"{where}: expected true or false, got {value!r}")


def _parse_cc(where: str, key: str, target: object) -> int:
    try:
        cc = int(key)
    except ValueError:
        raise ValueError(f"{where}: expected a MIDI CC number 0..127") from None
    if not 0 <= cc <= 127:
        raise ValueError(f"{where}: MIDI CC {cc} is outside 0..127")
    if not isinstance(target, str) or target not in PARAM_SPECS:
        raise ValueError(f"{where}: {target!r} is not a parameter")
    return cc


def parse_assignment(text: str) -> tuple[str, str]:
    """Split a ``key=value`` command-line assignment; raises ``ValueError`` when malformed."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip() or not value.strip():
        raise ValueError(f"--set {text!r}: expected KEY=VALUE")
    return key.strip(), value.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``speakup presets list`` and ``speakup presets show NAME``."""
    actions = parser.add_subparsers(dest="presets_action", required=True)
    actions.add_parser("list", help="list the shipped presets")
    show = actions.add_parser("show", help="show every value of a preset")
    show.add_argument("name", help="preset name or path to a .toml file")


def run(args: argparse.Namespace) -> int:
    """Print the preset list or one preset; exit 2 for an unknown or invalid preset."""
    if args.presets_action == "list":
        names = list_presets()
        width = max(map(len, names), default=0)
        for name in names:
            preset = load_preset(name)
            print(f"{name:<{width}}  {preset.options.engine:<7}  {preset.description}")
        return 0
    try:
        preset = load_preset(args.name)
    except ValueError as error:
        print(f"speakup presets: error: {error}", file=sys.stderr)
        return 2
    print(_describe(preset))
    return 0


def _describe(preset: Preset) -> str:
    lines = [f"# {preset.name}: {preset.description}", "", "[options]"]
    lines += [f"{key} = {_toml_value(getattr(preset.options, key))}" for key in _OPTION_FIELDS]
    lines += ["", "[params]  # * = set by the preset, otherwise the default"]
    for key, value in preset.parameter_values().items():
        marker = "*" if key in preset.params else " "
        lines.append(f"{key} = {value:g}  # {marker} {PARAM_SPECS[key].help}")
    if preset.midi_map:
        lines += ["", "[midi]  # CC number -> parameter"]
        lines += [f"{cc} = {target!r}" for cc, target in sorted(preset.midi_map.items())]
    return "\n".join(lines)


def _toml_value(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)
