"""``speakup install-plugin``: copies a bundle and records the interpreter the plugin starts the server with."""

from __future__ import annotations

import sys

import pytest

from speakup_fx.cli import main
from speakup_fx.server.install import INTERPRETER_FILE, install_plugin


def fake_bundle(folder, name="SpeakUp.vst3"):
    bundle = folder / name
    (bundle / "Contents" / "x86_64-linux").mkdir(parents=True)
    (bundle / "Contents" / "x86_64-linux" / "SpeakUp.so").write_bytes(b"\x7fELF")
    return bundle


def test_install_copies_the_bundle_and_records_this_interpreter(tmp_path):
    installed = install_plugin(fake_bundle(tmp_path / "build"), tmp_path / "vst3")
    assert installed == tmp_path / "vst3" / "SpeakUp.vst3"
    assert (installed / "Contents" / "x86_64-linux" / "SpeakUp.so").read_bytes() == b"\x7fELF"
    assert (installed / INTERPRETER_FILE).read_text() == sys.executable + "\n"


def test_reinstalling_replaces_the_old_copy(tmp_path):
    destination = tmp_path / "vst3"
    install_plugin(fake_bundle(tmp_path / "old"), destination)
    (destination / "SpeakUp.vst3" / "stale").write_text("x")
    install_plugin(fake_bundle(tmp_path / "new"), destination)
    assert not (destination / "SpeakUp.vst3" / "stale").exists()


def test_something_that_is_not_a_bundle_is_refused(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="is not a VST3 bundle"):
        install_plugin(tmp_path / "plain", tmp_path / "vst3")
    assert main(["install-plugin", str(tmp_path / "plain"), "--destination", str(tmp_path / "vst3")]) == 2
