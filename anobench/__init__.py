"""anobench: a benchmark harness for contrastive objectives in anomaly detection."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("anobench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
