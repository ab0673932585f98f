"""The version of databackend-huggingface (one source: read by the build backend)."""

__version__ = "0.2.0"
