"""The library version (one place; read by the package and by saved artifacts)."""

__version__ = "0.1.0"
