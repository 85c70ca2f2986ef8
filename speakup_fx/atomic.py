"""The one way SpeakUp FX writes a file: to a temporary file beside it, then renamed into place.

The temporary name is short and fixed in length (``.speakup-<host>-<pid>-<hex>.tmp<suffix>``), so it
fits whenever the destination's name fits, and it carries the writer's host (a hash of its name) and
process id, so a later run can remove what a killed run on the same machine left behind
(``remove_stale_temporaries``) without touching anyone else's files, including those that other
machines of a cluster are writing to a shared folder. A file that is replaced keeps its permission bits; a new file gets the umask's.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

TEMP_PREFIX = ".speakup-"
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
"""This machine in temporary names: processes of other hosts are not ours to judge alive or dead."""
_TEMP_NAME = re.compile(r"^\.speakup-([0-9a-f]{8})-(\d+)-[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]{1,8})?$")
_MAX_SUFFIX_CHARS = 9


class OutputExistsError(FileExistsError):
    """The destination exists (or appeared while writing) and replacing it was not allowed."""


def temporary_name(path: Path, suffix: str | None = None) -> Path:
    """A fresh temporary path in ``path``'s folder, ending in ``suffix`` (default: ``path``'s, if short)."""
    suffix = path.suffix if suffix is None else suffix
    if len(suffix) > _MAX_SUFFIX_CHARS or not re.fullmatch(r"(\.[A-Za-z0-9]+)?", suffix):
        suffix = ""
    return path.with_name(f"{TEMP_PREFIX}{HOST_TAG}-{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], *, overwrite: bool = True, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes ``path`` atomically, on any error it is removed.

    With ``overwrite=False`` an existing ``path`` (also one that appears while writing) raises
    ``OutputExistsError`` and is left alone. ``suffix`` is the temporary file's ending (the format
    some writers infer from it; default: ``path``'s own).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise OutputExistsError(f"{path} exists")
    temporary = temporary_name(path, suffix)
    try:
        temporary.open("xb").close()  # inside the try: an interrupt right after creating it still removes it
        yield temporary
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.chmod(temporary, mode)
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            _link_new(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _link_new(temporary: Path, path: Path) -> None:
    """Give ``temporary`` the name ``path`` only if no file has it (no race with another writer)."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise OutputExistsError(f"{path} appeared while writing") from None
    except OSError:  # a filesystem without hard links
        if path.exists():
            raise OutputExistsError(f"{path} appeared while writing") from None
        os.replace(temporary, path)


def process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove temporary files of ours in ``folder`` whose writing process on this host is gone; return them."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = _TEMP_NAME.match(entry.name)
            ours = match and match.group(1) == HOST_TAG and entry.is_file(follow_symlinks=False)
            if ours and not process_alive(int(match.group(2))):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed
