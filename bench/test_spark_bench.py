"""Benchmark: files per minute of ``speakup spark bounce`` on local[1] and local[2] against a sequential bounce.

Spark's start-up (JVM, session, Python workers importing the package) is timed apart from the
bounce. The figure that matters is the ratio local[2] / local[1]: how much a second executor core
adds on this machine (other load on the cores lowers it). Run: ``pytest bench/test_spark_bench.py --benchmark-enable -s``;
``SPEAKUP_BENCH_SPARK_FILES`` / ``SPEAKUP_BENCH_SPARK_S`` set the number and length of files
(default 8 files of 20 s, 48 kHz stereo) and ``SPEAKUP_BENCH_PRESET`` the preset (default podcast).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic import noisy_speech  # noqa: E402

from speakup_fx.bounce import bounce  # noqa: E402
from speakup_fx.spark.bounce import spark_bounce  # noqa: E402
from speakup_fx.spark.session import session_conf, spark_session  # noqa: E402

FILES = int(os.environ.get("SPEAKUP_BENCH_SPARK_FILES", 8))
DURATION_S = float(os.environ.get("SPEAKUP_BENCH_SPARK_S", 20))
PRESET = os.environ.get("SPEAKUP_BENCH_PRESET", "podcast")
SAMPLE_RATE = 48_000
MIN_SPEEDUP = 1.3
"""local[2] must bounce at least this many times the files per minute of local[1] (2 free cores)."""


def spark_run(master: str, inputs: Path, output: Path) -> dict[str, float]:
    """Start a session on ``master``, warm its Python workers, bounce ``inputs``; seconds of each phase."""
    started = time.perf_counter()
    settings = session_conf(master, threads=1, conf={"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"})
    with spark_session(f"bench {master}", settings) as spark:
        cores = spark.sparkContext.defaultParallelism
        # each Python worker imports the package once (a lambda: the workers cannot import this file)
        spark.sparkContext.parallelize(range(cores), cores).map(lambda _: importlib.import_module("speakup_fx.bounce").__name__).collect()
        ready = time.perf_counter()
        rows = spark_bounce(spark, [inputs], output, preset=PRESET)
        done = time.perf_counter()
    assert all(row["status"] == "bounced" for row in rows), rows
    bounce_s = done - ready
    workers = len({row["worker"] for row in rows})
    return {"startup_s": ready - started, "bounce_s": bounce_s, "files_per_min": 60 * len(rows) / bounce_s, "workers": workers}


def test_spark_bounce_files_per_minute_local_1_vs_2(benchmark, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for index in range(FILES):
        audio = noisy_speech(DURATION_S, SAMPLE_RATE, channels=2, snr_db=15.0, seed=index)
        soundfile.write(inputs / f"take{index:02d}.wav", audio.T, SAMPLE_RATE, subtype="PCM_24")

    def measure() -> dict[str, dict[str, float]]:
        started = time.perf_counter()
        bounce(inputs, tmp_path / "sequential", preset=PRESET)
        sequential_s = time.perf_counter() - started
        return {
            "sequential": {"bounce_s": sequential_s, "files_per_min": 60 * FILES / sequential_s},
            "local[1]": spark_run("local[1]", inputs, tmp_path / "local1"),
            "local[2]": spark_run("local[2]", inputs, tmp_path / "local2"),
        }

    runs = benchmark.pedantic(measure, rounds=1, iterations=1)
    speedup = runs["local[2]"]["files_per_min"] / runs["local[1]"]["files_per_min"]
    versus_sequential = runs["local[2]"]["files_per_min"] / runs["sequential"]["files_per_min"]
    benchmark.extra_info.update(files=FILES, duration_s=DURATION_S, preset=PRESET, runs=runs,
                                local2_over_local1=speedup, local2_over_sequential=versus_sequential)
    print(f"\nspark bounce of {FILES} x {DURATION_S:.0f} s ({PRESET}):")
    for name, run in runs.items():
        startup = f", start-up {run['startup_s']:.1f} s apart, {run['workers']} worker(s)" if "startup_s" in run else ""
        print(f"  {name:10s} {run['files_per_min']:6.1f} files/min ({run['bounce_s']:.1f} s{startup})")
    print(f"  local[2] / local[1] = {speedup:.2f}; local[2] / sequential = {versus_sequential:.2f}")
    assert speedup >= MIN_SPEEDUP
