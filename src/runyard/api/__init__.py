"""The HTTP layer."""

from runyard.api.app import create_app

__all__ = ["create_app"]
