"""Leaderboard tables built from cached run results."""
from mmbench.report.frame import results_frame
from mmbench.report.tables import aggregate, write_tables

__all__ = ["aggregate", "results_frame", "write_tables"]
