"""The version of databackend-local (one source: read by the build backend)."""

__version__ = "0.2.0"
