"""The one atomic write: all or nothing, names that fit, modes kept, stale temporaries of ours removed."""

import os
import subprocess
import sys

import pytest

from speakup_fx.atomic import HOST_TAG, OutputExistsError, atomic_write, remove_stale_temporaries, temporary_name


def test_written_file_appears_only_on_success(tmp_path):
    target = tmp_path / "out.wav"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_write(target) as temporary:
        temporary.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert list(tmp_path.iterdir()) == [target]


def test_temporary_name_fits_whenever_the_name_fits(tmp_path):
    target = tmp_path / ("x" * 251 + ".wav")
    assert len(temporary_name(target).name) <= 9 + 8 + 1 + 10 + 1 + 8 + 4 + 9  # prefix, host, pid, random, .tmp, suffix
    with atomic_write(target) as temporary:
        temporary.write_bytes(b"ok")
    assert target.read_bytes() == b"ok"


def test_replaced_file_keeps_its_mode_and_new_files_follow_the_umask(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    target.chmod(0o600)
    with atomic_write(target) as temporary:
        temporary.write_text("new")
    assert target.stat().st_mode & 0o777 == 0o600
    fresh = tmp_path / "fresh.txt"
    mask = os.umask(0o022)
    try:
        with atomic_write(fresh) as temporary:
            temporary.write_text("x")
    finally:
        os.umask(mask)
    assert fresh.stat().st_mode & 0o777 == 0o644


def test_without_overwrite_an_existing_file_is_left_alone(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("keep")
    with pytest.raises(OutputExistsError):
        with atomic_write(target, overwrite=False) as temporary:
            temporary.write_text("new")
    appeared = tmp_path / "late.txt"
    with pytest.raises(OutputExistsError):
        with atomic_write(appeared, overwrite=False) as temporary:
            temporary.write_text("new")
            appeared.write_text("other writer")
    assert target.read_text() == "keep" and appeared.read_text() == "other writer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.txt", "out.txt"]


def test_only_our_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".speakup-{HOST_TAG}-{dead_pid}-0123abcd.tmp.wav"
    ours_alive = tmp_path / f".speakup-{HOST_TAG}-{os.getpid()}-0123abcd.tmp.wav"
    other_host = "0123abcd" if HOST_TAG != "0123abcd" else "4567cdef"
    foreign = [
        tmp_path / f".speakup-{other_host}-{dead_pid}-0123abcd.tmp.wav",  # another machine writing to a shared folder
        tmp_path / f".speakup-{HOST_TAG}-{dead_pid}-notours.tmp",
        tmp_path / "song.wav",
        tmp_path / f".other-{dead_pid}.tmp",
    ]
    for path in [stale, ours_alive, *foreign]:
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and ours_alive.exists() and all(p.exists() for p in foreign)
