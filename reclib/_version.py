"""The package version (one place, read by the package and the model file header)."""

__version__ = "0.1.0"
