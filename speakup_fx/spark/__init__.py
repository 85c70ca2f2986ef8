"""Batch work beyond one machine on Apache Spark (PySpark): the only package that imports pyspark.

- ``session``: a Spark session for a master URL (local mode by default) and job progress on the driver.
- ``bounce``: ``speakup spark bounce``: one Spark task per file, each the same ``bounce_file`` as
  ``speakup bounce``; a report table (Parquet and CSV) with a row per file.
- ``degrade``: ``speakup spark degrade``: degraded training pairs drawn from (seed, index) with the
  training code's own ``DegradedSpeech``, written as tar shards (``speakup_fx.data.shards``).
- ``cli``: the ``speakup spark`` command.
"""
