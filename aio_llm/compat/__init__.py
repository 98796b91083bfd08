"""Compatibility with code written against the seed's API (see DESIGN §7 and docs/migration.md)."""

from __future__ import annotations

__all__ = []
