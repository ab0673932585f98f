"""The version of databackend-csv (one source: read by the build backend)."""

__version__ = "0.2.0"
