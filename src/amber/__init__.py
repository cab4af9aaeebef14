"""amber: a trust-and-safety engine for interactive-atrocity posts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("amber")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
