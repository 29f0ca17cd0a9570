"""Embedded default configuration shipped with the package."""
