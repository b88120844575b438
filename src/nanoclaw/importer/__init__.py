"""``nanoclaw import``: move in from a NanoClaw v1 or TypeScript v2 install, read-only on the source."""
