"""The ``speakup bounce`` command: options, progress on stderr, SIGINT/SIGTERM, exit codes.

Exit codes: 0 success; 1 some of several inputs (or of a folder's files) failed, the rest were
processed; 2 bad usage, or the one input file could not be bounced (nothing written);
130 / 143 interrupted by SIGINT / SIGTERM (the file being bounced was not written, no
temporary file is left; files finished before are kept).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from speakup_fx.bounce.batch import BounceError, bounce
from speakup_fx.bounce.pipeline import DEFAULT_PRESET
from speakup_fx.bounce.progress import ProgressReporter
from speakup_fx.bounce.via_plugin import via_plugin_effect
from speakup_fx.media import BIT_DEPTHS, OUTPUT_FORMATS
from speakup_fx.presets import parse_assignment
from speakup_fx.runtime.device import thread_count

logger = logging.getLogger(__name__)

EXIT_SOME_FAILED = 1
EXIT_BAD = 2


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: unwinds the bounce (removing its temporary files) like KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``speakup bounce`` options."""
    parser.description = "Enhance audio/video files or folders. " + " ".join(__doc__.split("\n\n")[1].split())
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio/video files or folders (recursive)")
    parser.add_argument("-o", "--output", required=True, help="output file, or folder for folders and several inputs")
    parser.add_argument("--preset", default=DEFAULT_PRESET, help=f"name or .toml file (default: {DEFAULT_PRESET})")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter or option; repeatable"
    )
    parser.add_argument(
        "--format", choices=OUTPUT_FORMATS, help="format of audio outputs (default: output suffix, else the input's)"
    )
    parser.add_argument("--bit-depth", choices=BIT_DEPTHS, default="24", help="WAV/FLAC sample format (default: 24)")
    parser.add_argument("--sample-rate", type=int, help="output sample rate in Hz (default: the input's)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs (keeping their permissions) unless read-only"
    )
    parser.add_argument("--force", action="store_true", help="replace existing outputs, read-only ones too")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail on a truncated input (shorter than its header declares) instead of bouncing it with a warning",
    )
    parser.add_argument("--report", help="before/after spectrograms and loudness: a .png (one input) or a folder")
    parser.add_argument(
        "--midi",
        metavar="FILE.mid",
        help="standard MIDI file whose control changes drive the preset's [midi] map at their times (every input)",
    )
    parser.add_argument("--device", help="torch device for the neural engine, e.g. cpu or cuda:0 (default: automatic)")
    parser.add_argument(
        "--threads", type=thread_count, default=1,
        help="torch threads (default: 1, as `speakup spark bounce` uses: the same settings give the same bytes)",
    )  # fmt: skip
    parser.add_argument(
        "--via-plugin",
        action="store_true",
        help="render through the installed SpeakUp VST3 (speakup install-plugin): exactly what a DAW produces",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``speakup bounce``; returns the exit code (see the module docstring)."""
    try:
        overrides = dict(parse_assignment(text) for text in args.set)
    except ValueError as error:
        logger.error("%s", error)
        return EXIT_BAD
    try:
        effect = via_plugin_effect(args.preset, overrides, args.device) if args.via_plugin else None
    except ValueError as error:
        logger.error("%s", error)
        return EXIT_BAD
    progress = ProgressReporter()
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with _signals_interrupt(), progress.attached_to_logging():
            bounce(
                args.inputs,
                args.output,
                preset=args.preset,
                overrides=overrides,
                output_format=args.format,
                bit_depth=args.bit_depth,
                sample_rate=args.sample_rate,
                overwrite=args.overwrite,
                force=args.force,
                strict=args.strict,
                report=args.report,
                device=args.device,
                effect=effect,
                progress=progress,
                midi=args.midi,
            )
    except (Interrupted, KeyboardInterrupt) as stop:
        signum = stop.signum if isinstance(stop, Interrupted) else signal.SIGINT
        logger.error(
            "interrupted by %s: the file being bounced was not written (files finished before are kept)",
            signal.Signals(signum).name,
        )
        return 128 + signum
    except BounceError as error:
        if error.results is None:
            logger.error("%s", error)
            return EXIT_BAD
        if len(args.inputs) == 1 and not Path(args.inputs[0]).is_dir():
            return EXIT_BAD  # the one file failed; its error is logged
        failed = sum(not result.ok for result in error.results)
        logger.error("%d of %d files failed", failed, len(error.results))
        return EXIT_SOME_FAILED
    finally:
        torch.set_num_threads(threads)
    return 0


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise ``Interrupted`` (once: a second signal during clean-up is ignored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        for each in signals:
            signal.signal(each, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {each: signal.signal(each, interrupt) for each in signals}
    try:
        yield
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)
