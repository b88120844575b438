"""Does the running host use the current settings? Restart it when not (setup, ``channels add``)."""

from __future__ import annotations

from nanoclaw.settings import Settings, effective_settings_hash

from .control import ServiceControl
from .hoststate import HostState, read_state


def running_state(settings: Settings) -> HostState | None:
    from nanoclaw.service.probe import host_running

    from .hoststate import HOST_PID_FILE
    from .pidfile import PidFile

    state = read_state(settings.data_path)
    if state is None or PidFile(settings.data_path / HOST_PID_FILE).alive() != state.pid:
        return None
    return state if host_running(settings) else None


def settings_differ(settings: Settings) -> bool | None:
    """None when no host runs; else whether its settings hash differs from ``settings``."""
    state = running_state(settings)
    if state is None:
        return None
    return state.settings_hash != effective_settings_hash(settings)


def restart_if_changed(
    settings: Settings, control: ServiceControl | None = None
) -> HostState | None:
    """Restart a running host whose settings are out of date; its (new) state, None if none runs."""
    differ = settings_differ(settings)
    if differ is None:
        return None
    if not differ:
        return running_state(settings)
    return (control or ServiceControl(settings=settings)).restart()
