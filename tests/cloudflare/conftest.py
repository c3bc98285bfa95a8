"""Fixtures for the edge tests (helpers live in cfhelpers.py)."""

from cfhelpers import registry, settings

__all__ = ["registry", "settings"]
