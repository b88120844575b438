"""A fake sandbox runtime whose runners are futures the test ends; it records every call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from nanoclaw.errors import RuntimeUnavailableError
from nanoclaw.runtime.base import RunnerExit, RunnerHandle, RunnerInfo, RunnerRuntime, RunSpec


class FakeHandle(RunnerHandle):
    def __init__(self, spec: RunSpec, n: int) -> None:
        self.session_id = spec.session_id
        self.runner_id = f"fake-{n}"
        self.spec = spec
        self.exit: asyncio.Future[RunnerExit] = asyncio.get_running_loop().create_future()

    async def wait(self) -> RunnerExit:
        return await asyncio.shield(self.exit)

    async def stop(self, *, grace_s: float) -> None:
        self.finish(-15)

    def is_running(self) -> bool:
        return not self.exit.done()

    def finish(self, code: int = 0) -> None:
        if not self.exit.done():
            self.exit.set_result(RunnerExit(exit_code=code, log_tail=""))


@dataclass
class FakeRuntime(RunnerRuntime):
    name: str = "fake"
    available: bool = True
    start_delay_s: float = 0.0
    starts: list[str] = field(default_factory=list)
    handles: dict[str, FakeHandle] = field(default_factory=dict)

    async def check(self) -> None:
        if not self.available:
            raise RuntimeUnavailableError("fake runtime is down", runtime=self.name)

    async def start(self, spec: RunSpec) -> RunnerHandle:
        await self.check()
        if self.start_delay_s:
            await asyncio.sleep(self.start_delay_s)
        self.starts.append(spec.session_id)
        handle = FakeHandle(spec, len(self.starts))
        self.handles[spec.session_id] = handle
        return handle

    async def list_runners(self, *, install_id: str) -> list[RunnerInfo]:
        return [
            RunnerInfo(h.runner_id, h.session_id, install_id, h.is_running())
            for h in self.handles.values()
        ]

    async def remove(self, runner_id: str) -> None:
        for handle in self.handles.values():
            if handle.runner_id == runner_id:
                handle.finish(-9)
