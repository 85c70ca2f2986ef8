"""Builds the native C++ tests (native/tests) with CMake and runs them with ctest."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from plugin_build import find_tool

REPO_ROOT = Path(__file__).resolve().parents[2]
NATIVE_TESTS = ["test_ring_buffer", "test_ring_stress", "test_shared_memory", "test_bridge"]


def build_and_run_ctest(build_dir: Path, *cmake_options: str) -> subprocess.CompletedProcess[str]:
    cmake = find_tool("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed: the native C++ tests cannot be built")
    ctest = str(Path(cmake).with_name("ctest"))
    generator = ["-G", "Ninja"] if find_tool("ninja") else []
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "2"}
    configure = [
        cmake, "-S", str(REPO_ROOT), "-B", str(build_dir), *generator,
        "-DSPEAKUP_BUILD_PYTHON=OFF", "-DSPEAKUP_BUILD_TESTS=ON", *cmake_options,
    ]  # fmt: skip
    for command in (configure, [cmake, "--build", str(build_dir)]):
        step = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert step.returncode == 0, step.stdout + step.stderr
    return subprocess.run(
        [ctest, "--output-on-failure"],
        cwd=build_dir,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def assert_all_native_tests_passed(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"100% tests passed, 0 tests failed out of {len(NATIVE_TESTS)}" in result.stdout
    for name in NATIVE_TESTS:
        assert name in result.stdout


def test_native_cpp_tests_pass_under_ctest(tmp_path):
    assert_all_native_tests_passed(build_and_run_ctest(tmp_path, "-DCMAKE_BUILD_TYPE=Release"))


@pytest.mark.slow
def test_native_cpp_tests_are_free_of_data_races_under_thread_sanitizer(tmp_path):
    result = build_and_run_ctest(
        tmp_path, "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DSPEAKUP_SANITIZE=thread"
    )
    assert_all_native_tests_passed(result)
    assert "ThreadSanitizer" not in result.stdout + result.stderr
