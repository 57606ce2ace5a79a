"""``edge bench``: throughput and per-stage latency of bundles on a source, per backend and precision, the
pipeline against the naive single loop in the same run, a sweep of workers × threads, and a report folder
with charts. :mod:`.measure` times runs, :mod:`.plan` says what to run, :mod:`.run` runs it,
:mod:`.report` writes the JSON, the Markdown and the charts (matplotlib, the ``report`` extra)."""
