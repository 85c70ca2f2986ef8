"""Progress of a bounce: the one reporter the CLI, the Spark job and the model server share.

The pipeline calls a ``ProgressCallback`` as it goes; ``ProgressReporter`` is the callback that
shows it: a one-line bar on a terminal, otherwise a log line every ``interval_s`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[Path, str, float, "float | None"], None]
"""``progress(input_path, phase, done_s, total_s)``: phase 'enhance', 'normalise', then 'done'.

``done_s`` is audio processed in the phase so far; ``total_s`` is None when the duration is unknown.
"""

BAR_WIDTH = 30


class ProgressReporter:
    """Shows progress: a bar on ``stream`` when it is a terminal (or ``bar=True``), else periodic log lines.

    Use ``attached_to_logging()`` around the work so that a log record first ends the bar's line.
    """

    def __init__(self, stream: TextIO | None = None, *, bar: bool | None = None, interval_s: float = 10.0) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.bar = self._stream.isatty() if bar is None else bar
        self.interval_s = interval_s
        self._shown = ""
        self._last_log = time.monotonic()

    def __call__(self, path: Path, phase: str, done_s: float, total_s: float | None) -> None:
        if phase == "done":
            self.end_line()
        elif self.bar:
            self._draw(path, phase, done_s, total_s)
        elif time.monotonic() - self._last_log >= self.interval_s:
            self._last_log = time.monotonic()
            of_total = f" of {clock(total_s)}" if total_s else ""
            logger.info("%s: %s %s%s", path, phase, clock(done_s), of_total)

    def _draw(self, path: Path, phase: str, done_s: float, total_s: float | None) -> None:
        if total_s:
            fraction = min(done_s / total_s, 1.0)
            bar = "#" * round(fraction * BAR_WIDTH)
            line = f"{path.name} {phase} [{bar:<{BAR_WIDTH}}] {fraction:4.0%} {clock(done_s)}/{clock(total_s)}"
        else:
            line = f"{path.name} {phase} {clock(done_s)}"
        if line != self._shown:
            self._stream.write("\r" + line.ljust(len(self._shown)))
            self._stream.flush()
            self._shown = line

    def end_line(self, record: object = None) -> bool:
        """End the bar's line if one is shown (also a logging filter: lets every record through)."""
        if self._shown:
            self._stream.write("\n")
            self._shown = ""
        return True

    @contextlib.contextmanager
    def attached_to_logging(self) -> Iterator[ProgressReporter]:
        """While inside, every log record on the root logger's handlers first ends the bar's line."""
        handlers = list(logging.getLogger().handlers)
        for handler in handlers:
            handler.addFilter(self.end_line)
        try:
            yield self
        finally:
            self.end_line()
            for handler in handlers:
                handler.removeFilter(self.end_line)


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour."""
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"
