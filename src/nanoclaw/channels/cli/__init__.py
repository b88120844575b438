"""The local terminal channel: NDJSON over a Unix socket under ``data/`` (mode 0600)."""
