"""The read-only web UI and JSON API (`musicark serve`): see musicark.web.app."""

from __future__ import annotations

from musicark.web.app import create_app

__all__ = ["create_app"]
