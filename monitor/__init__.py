"""monitor: a media-monitoring ingestion daemon."""

__version__ = "0.1.0"
