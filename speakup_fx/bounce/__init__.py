"""``speakup bounce``: enhance audio and video files or whole folders, streaming in bounded memory.

- ``pipeline``: one file in, one file out (``bounce_file``): what the CLI, the Spark job and the
  model server call.
- ``batch``: files and folders (``bounce``): outputs planned and mirrored, one effect for all,
  every file's outcome.
- ``automation``: MIDI automation (``read_automation`` parses a file once; ``bounce_file(midi=...)``
  applies it).
- ``progress``: the one progress reporter (a bar on a terminal, periodic log lines otherwise).
- ``cli``: the ``speakup bounce`` command (options, signals, exit codes).
"""

from speakup_fx.bounce.batch import BounceError, bounce
from speakup_fx.bounce.pipeline import DEFAULT_PRESET, BounceResult, FileBounceError, bounce_file

__all__ = ["DEFAULT_PRESET", "BounceError", "BounceResult", "FileBounceError", "bounce", "bounce_file"]
