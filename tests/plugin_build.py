"""CMake builds for the tests: the tool finder, the VST3 bundles built once per session into
build/plugin-tests (ignored by git; incremental, so later sessions only re-link what changed),
and ``environment``: a private HOME with the bundle installed and a private runtime dir."""

from __future__ import annotations

import functools
import gc
import os
import signal
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from speakup_fx._native import bridge_segment_prefix
from speakup_fx.server.install import install_plugin

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = REPO_ROOT / "build" / "plugin-tests"
DPF_DIR = Path("/usr/share/dpf")


def find_tool(name: str) -> str | None:
    """A tool on PATH or beside this interpreter (pip's cmake/ninja wheels)."""
    beside_python = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside_python) if beside_python.exists() else None)


@functools.cache
def _build() -> str:
    """"" on success, else the reason the bundles cannot be built here."""
    if not (DPF_DIR / "cmake" / "DPF-plugin.cmake").exists():
        return "dpf-source is not installed (apt-get install dpf-source)"
    cmake = find_tool("cmake")
    if cmake is None:
        return "cmake is not installed"
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "2"}
    configure = [
        cmake, "-S", str(REPO_ROOT), "-B", str(BUILD_DIR), "-DCMAKE_BUILD_TYPE=Release",
        "-DSPEAKUP_BUILD_PYTHON=OFF", "-DSPEAKUP_BUILD_PLUGIN=ON", "-DSPEAKUP_BUILD_PLUGIN_TEST_HOST=ON",
        "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON",
    ]  # fmt: skip
    for command in (configure, [cmake, "--build", str(BUILD_DIR)]):
        step = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        assert step.returncode == 0, step.stdout + step.stderr
    return ""


def plugin_bundles() -> dict[str, Path]:
    """{"SpeakUp": stereo bundle, "SpeakUpMono": mono bundle}; skips the test where DPF or cmake is missing.

    The same build holds SpeakUpRealtime-ladspa.so and realtime_host (plugin/tests/realtime_host.cpp).
    """
    reason = _build()
    if reason:
        pytest.skip(reason)
    return {name: BUILD_DIR / "bin" / f"{name}.vst3" for name in ("SpeakUp", "SpeakUpMono")}


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    """HOME with the installed bundle and a private runtime dir; the server is stopped afterwards."""
    bundles = plugin_bundles()
    home = tmp_path_factory.mktemp("home")
    runtime = tmp_path_factory.mktemp("run")
    runtime.chmod(0o700)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("XDG_RUNTIME_DIR", str(runtime))
        install_plugin(bundles["SpeakUp"], home / ".vst3")
        yield home / ".vst3" / "SpeakUp.vst3", runtime / "speakup"
        gc.collect()  # destroy the plugin instances first: a live instance restarts its server
        for pid in serving_processes(runtime / "speakup"):
            os.kill(pid, signal.SIGTERM)
        for leftover in Path("/dev/shm").glob(bridge_segment_prefix() + "*"):  # instances never destroyed
            leftover.unlink(missing_ok=True)


def serving_processes(runtime: Path) -> list[int]:
    """Server processes whose runtime dir is this module's (there must be at most one)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in cmdline and b"speakup_fx.cli" in cmdline and f"XDG_RUNTIME_DIR={runtime.parent}".encode() in environ:
            found.append(int(proc.name))
    return found


def header_constant(name: str) -> int:
    """A constant of plugin/generated/SpeakUpInfo.hpp."""
    header = (REPO_ROOT / "plugin" / "generated" / "SpeakUpInfo.hpp").read_text()
    return int(header.split(f"{name} = ")[1].split(";")[0])


def reported_latency(sample_rate: int) -> int:
    """The latency the plugin reports at ``sample_rate`` (plugin/generate_header.py)."""
    return -(-header_constant("kEngineLatencyBoundMs") * sample_rate // 1000) + header_constant("kBridgeBlockFrames")
