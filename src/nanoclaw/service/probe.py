"""Is a host answering on this install's terminal socket? (a connect, nothing sent)"""

from __future__ import annotations

import socket

from nanoclaw.settings import Settings

PROBE_TIMEOUT_S = 1.0


def host_running(settings: Settings) -> bool:
    if not settings.cli_socket.exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT_S)
    try:
        probe.connect(str(settings.cli_socket))
    except OSError:
        return False
    finally:
        probe.close()
    return True
