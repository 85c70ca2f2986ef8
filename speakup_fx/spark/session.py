"""A Spark session for a master URL, and job progress shown on the driver.

``local[N]`` (the default is ``local[*]``) runs Spark on this machine, bound to 127.0.0.1 so that it
needs no network; ``spark://host:7077``, ``yarn`` or ``k8s://https://host:443`` run on a cluster,
whose executors need this package installed (see README, "Beyond one machine").
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from pyspark import RDD
from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

DEFAULT_MASTER = "local[*]"
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Set on the executors to the job's thread count, so numerical libraries there run as the job says."""
PROGRESS_INTERVAL_S = 5.0


def session_conf(master: str, threads: int, conf: Mapping[str, str] = {}) -> dict[str, str]:
    """The settings of a session: ``conf`` on top of the master, the executors' thread count and, in local mode,
    the loopback address and this interpreter (unless ``PYSPARK_PYTHON`` names one) for the Python workers."""
    settings = {"spark.master": master}
    settings |= {f"spark.executorEnv.{name}": str(threads) for name in BLAS_THREAD_VARIABLES}
    if master.startswith("local"):
        settings |= {
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.pyspark.python": os.environ.get("PYSPARK_PYTHON", sys.executable),
        }
    return settings | dict(conf)


@contextlib.contextmanager
def spark_session(app_name: str, settings: Mapping[str, str]) -> Iterator[SparkSession]:
    """The active session if there is one (left running), else a new one with ``settings`` (stopped after)."""
    active = SparkSession.getActiveSession()
    if active is not None:
        logger.info("using the running Spark session (master %s)", active.sparkContext.master)
        yield active
        return
    if "spark.pyspark.python" in settings:  # PySpark takes its workers' interpreter from the environment
        os.environ["PYSPARK_PYTHON"] = settings["spark.pyspark.python"]
    builder = SparkSession.builder.appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    logger.info("Spark %s, master %s", spark.version, spark.sparkContext.master)
    try:
        yield spark
    finally:
        spark.stop()


def collect_with_progress(rdd: RDD, description: str, interval_s: float = PROGRESS_INTERVAL_S) -> list[Any]:
    """``rdd.collect()``, logging ``description: k of n done`` on the driver as Spark's tasks complete.

    An interrupt on the driver cancels the job.
    """
    context = rdd.context
    group = f"speakup-{uuid.uuid4().hex}"
    collected: list[Any] = []
    failure: list[BaseException] = []

    def work() -> None:
        context.setJobGroup(group, description, interruptOnCancel=True)
        try:
            collected.extend(rdd.collect())
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)

    worker = threading.Thread(target=work, name=group, daemon=True)
    worker.start()
    shown = -1
    try:
        while worker.is_alive():
            worker.join(interval_s)
            done, total = _task_counts(context, group)
            if total and done != shown:
                logger.info("%s: %d of %d done", description, done, total)
                shown = done
    except KeyboardInterrupt:
        context.cancelJobGroup(group)
        raise
    if failure:
        raise failure[0]
    return collected


def _task_counts(context: Any, group: str) -> tuple[int, int]:
    """(completed, all) tasks of the jobs of ``group``, from Spark's status tracker."""
    tracker = context.statusTracker()
    done = total = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        for stage_id in job.stageIds if job is not None else ():
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                done += stage.numCompletedTasks
                total += stage.numTasks
    return done, total
