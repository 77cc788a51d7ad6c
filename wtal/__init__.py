"""Weakly supervised temporal action localization: features to detections to metrics."""

__version__ = "0.1.0"
