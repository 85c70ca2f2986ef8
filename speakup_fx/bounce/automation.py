"""MIDI automation of a bounce: the control changes of a standard MIDI file, applied at their times.

``read_automation`` parses a file once: mido merges its tracks and converts ticks to seconds
with every ``set_tempo`` on the way (``ticks_per_beat`` from the header), so the tempo map is
respected wherever it sits (a type-1 file's tempo track drives the other tracks). Times are on
the input file's timeline: second 0 is its first sample.

``Automation.mapped`` checks the changes against an effect's MIDI map and chain before anything
is written. ``AutomationPlayer`` splits the decoded blocks at the changes and hands each change to
the effect (``SpeakUp.handle_midi``, the one CC -> value mapping) just before the block that
starts at its frame is processed, so it reaches the engine at that sample and is smoothed there
like any parameter change. A parameter acts at some delay inside the chain (``mix`` at the
engine's output: its whole latency; a stage's parameter after the stages before it), so each
change is handed over that much later and, once the bounce drops the latency
(``dsp.latency.aligned_blocks``), a change at input time ``t`` is heard at output time ``t``
(stage parameters to the engine's 10 ms hop). Changes at time 0 set the values the stream starts
with (no glide). A change due after the last input frame whose time is inside the audio (its
parameter's delay reaches past the end) is made at the end of the input, at most that delay early.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

logger = logging.getLogger(__name__)


class AutomationError(ValueError):
    """A MIDI file cannot automate this bounce; the message names the file and the problem."""


@dataclass(frozen=True)
class ControlChange:
    """One MIDI control change at ``time_s`` seconds; ``channel`` 0..15 as stored (shown 1..16)."""

    time_s: float
    channel: int
    control: int
    value: int

    def message(self) -> mido.Message:
        return mido.Message("control_change", channel=self.channel, control=self.control, value=self.value)


@dataclass(frozen=True)
class MappedAutomation:
    """The changes of a MIDI file that a MIDI map maps, each with its parameter, and warnings about the rest."""

    changes: tuple[tuple[ControlChange, str], ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Automation:
    """The control changes of one MIDI file, in time order (``source`` names the file in messages)."""

    source: str
    changes: tuple[ControlChange, ...]

    def mapped(self, midi_map: Mapping[int, str], offered_params: Iterable[str], preset_name: str) -> MappedAutomation:
        """The changes ``midi_map`` maps, each with its parameter, and a warning for each controller it does not.

        ``AutomationError`` when no change is mapped, or one drives a parameter outside ``offered_params``
        (the chain does not act on it).
        """
        offered = set(offered_params)
        mapped = [(change, midi_map[change.control]) for change in self.changes if change.control in midi_map]
        unused = sorted({name for _, name in mapped} - offered)
        if unused:
            controls = sorted({change.control for change, name in mapped if name in unused})
            raise AutomationError(
                f"{self.source}: CC {', '.join(map(str, controls))} drive(s) {', '.join(unused)}, "
                f"which the chain of preset {preset_name!r} does not use"
            )
        known = ", ".join(f"CC {cc} -> {name}" for cc, name in sorted(midi_map.items())) or "none"
        unmapped = sorted({(c.control, c.channel) for c in self.changes if c.control not in midi_map})
        warnings = [
            f"{self.source}: CC {control} on channel {channel + 1} is not in the MIDI map of preset {preset_name!r} "
            f"({known}); ignored"
            for control, channel in unmapped
        ]
        if not mapped:
            raise AutomationError(
                f"{self.source}: none of its control changes is in the MIDI map of preset {preset_name!r} ({known})"
            )
        return MappedAutomation(tuple(mapped), tuple(warnings))


def read_automation(path: str | os.PathLike[str]) -> Automation:
    """The control changes of the standard MIDI file at ``path``; ``AutomationError`` naming it if unreadable."""
    source = str(path)
    try:
        midi_file = mido.MidiFile(path)
        if midi_file.type == 2:
            raise AutomationError(f"{source}: a type-2 MIDI file (independent sequences) has no single timeline")
        time_s = 0.0
        changes = []
        for message in midi_file:  # tracks merged; message.time: seconds since the last, at the tempo then
            time_s += message.time
            if message.type == "control_change":
                changes.append(ControlChange(time_s, message.channel, message.control, message.value))
    except AutomationError:
        raise
    except FileNotFoundError:
        raise AutomationError(f"{source}: no such MIDI file") from None
    except OSError as error:
        if error.errno is not None:
            raise AutomationError(f"{source}: cannot read the MIDI file: {error.strerror}") from None
        raise AutomationError(f"{source}: not a valid standard MIDI file ({error})") from None  # mido's parse errors
    except EOFError:
        raise AutomationError(f"{source}: not a valid standard MIDI file (it ends in the middle of a track)") from None
    except (ValueError, KeyError, IndexError, TypeError, ZeroDivisionError) as error:
        raise AutomationError(f"{source}: not a valid standard MIDI file ({type(error).__name__}: {error})") from None
    if not changes:
        raise AutomationError(f"{source}: the MIDI file holds no control changes")
    return Automation(source, tuple(changes))


def load_automation(midi: str | os.PathLike[str] | Automation) -> Automation:
    """``midi`` itself when already read, else ``read_automation(midi)``."""
    return midi if isinstance(midi, Automation) else read_automation(Path(midi))


@dataclass(frozen=True)
class ScheduledChange:
    """A change, the input frame where its time falls, and the frame before which it is handed to the effect."""

    change: ControlChange
    time_frame: int
    handover_frame: int


def schedule(
    mapped: Sequence[tuple[ControlChange, str]], delay_s: Callable[[str], float], sample_rate: int
) -> list[ScheduledChange]:
    """``mapped`` changes at ``sample_rate``, handed over ``delay_s(parameter)`` after their time; in handover order."""
    scheduled = [
        ScheduledChange(
            change, round(change.time_s * sample_rate), round((change.time_s + delay_s(name)) * sample_rate)
        )
        for change, name in mapped
    ]
    return sorted(scheduled, key=lambda item: item.handover_frame)  # stable: the file's order at equal frames


class AutomationPlayer:
    """Hands ``scheduled`` changes to ``apply`` as a block stream passes through ``blocks``."""

    def __init__(self, scheduled: Sequence[ScheduledChange], apply: Callable[[ControlChange], None]) -> None:
        self._scheduled, self._apply = list(scheduled), apply
        self.late: list[ControlChange] = []
        """After the stream: the changes whose time is at or after its end (never applied)."""

    def start(self) -> None:
        """Apply the changes at time 0 (call before the effect's reset, so the stream starts at their values)."""
        for item in self._scheduled:
            if item.time_frame <= 0:
                self._apply(item.change)
        self._scheduled = [item for item in self._scheduled if item.time_frame > 0]

    def blocks(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """``blocks`` split at the handover frames; a change is applied as the block starting at its frame is drawn.

        The consumer must process each block before drawing the next (as ``aligned_blocks`` does).
        """
        pending = iter(self._scheduled)
        upcoming = next(pending, None)
        position = 0
        for block in blocks:
            start = 0
            while start < block.shape[1]:
                while upcoming is not None and upcoming.handover_frame <= position:
                    self._apply(upcoming.change)
                    upcoming = next(pending, None)
                end = block.shape[1]
                if upcoming is not None:
                    end = min(end, start + upcoming.handover_frame - position)
                yield block[:, start:end]
                position += end - start
                start = end
        remaining = [] if upcoming is None else [upcoming, *pending]
        for item in remaining:
            if item.time_frame < position:
                self._apply(item.change)
        self.late = [item.change for item in remaining if item.time_frame >= position]
