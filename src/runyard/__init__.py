"""Runyard: a self-hosted job platform speaking the CoreClaw API v2."""

__version__ = "0.1.0"
