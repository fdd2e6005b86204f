"""Metrics beyond accuracy and macro-F1 that some data sets are reported with."""
from mmbench.metrics.anti_spoofing import EXTRA_METRICS, anti_spoofing_metrics

__all__ = ["EXTRA_METRICS", "anti_spoofing_metrics"]
