"""The sweep: ack sync, stuck runners, retries with backoff, orphan claims, due work."""
