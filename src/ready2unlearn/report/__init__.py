"""Benchmark report: seed summaries, plots, and ``report.md`` / ``report.html`` for ``r2u bench``."""

from ready2unlearn.report.render import write_report
from ready2unlearn.report.summary import summarise

__all__ = ["summarise", "write_report"]
