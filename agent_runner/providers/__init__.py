"""Model providers: ``mock`` (deterministic, no key) and ``anthropic`` (the Messages API)."""
