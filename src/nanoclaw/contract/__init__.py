"""What host and runner share: time format, seq parity, session layout. Stdlib only (the runner imports it)."""
