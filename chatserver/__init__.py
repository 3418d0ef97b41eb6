"""chatserver: a self-hosted, privacy-first live support chat and helpdesk server."""

__version__ = "0.1.0"
