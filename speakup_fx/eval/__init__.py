"""Evaluation: speech-quality metrics (``metrics``), the benchmark of systems on data sets
(``benchmark``) and the ``speakup eval`` command (``cli``)."""
