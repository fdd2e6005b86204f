"""The static leaderboard site (``python -m mmbench publish``)."""
from mmbench.report.site.publish import publish

__all__ = ["publish"]
