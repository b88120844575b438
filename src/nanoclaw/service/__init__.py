"""Keeping the host up: service units, the fallback supervisor, pid files and the start-up breaker."""
