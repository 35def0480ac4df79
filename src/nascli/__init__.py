"""nascli: neural architecture search in the NASNet cell space."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nascli")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
