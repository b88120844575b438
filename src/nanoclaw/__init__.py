"""NanoClaw: a personal AI assistant host whose agents run sandboxed, one container per session."""

__version__ = "0.1.0"
