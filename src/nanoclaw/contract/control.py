"""Control rows the host writes into ``inbound.db`` for the runner itself (not for the model)."""

from __future__ import annotations

# ``{"type": STOP_RUNNER_TYPE}`` in a ``system`` row (trigger 0): the runner alive when it was
# written stops between turns (a restart); a runner started later acks it and carries on.
STOP_RUNNER_TYPE = "stop_runner"
