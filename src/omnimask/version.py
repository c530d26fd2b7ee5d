"""The package version (its own module, so nothing needs to import the package to read it)."""

__version__ = "0.1.0"
