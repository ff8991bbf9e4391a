"""The package version (one place: the wheel build reads it, and so does `portal --version`)."""

__version__ = "0.1.0"
