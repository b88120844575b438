"""The Claude agent inside a real sandbox (Docker and bubblewrap), reaching the fake Messages API
only through the host's credential proxy: the tool loop, sandbox tools, ``send_file`` from the
read-only session mount's writable outbox, memory in the group folder, and the transcript
surviving a restart of the sandbox."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from nanoclaw.db.models import ContainerConfig
from nanoclaw.host import Host, build_host
from tests.e2e.test_sandbox_runtimes import WAIT_S, live_runners, until
from tests.fakes.anthropic_server import FakeAnthropic, reply, tool_call
from tests.helpers import make_agent, say, texts, wire_chat

KEY = "sk-ant-e2e-not-a-real-key"


async def test_the_agent_works_inside_the_sandbox_and_resumes_after_a_restart(
    make_settings: Any, runtime_name: str, fake_api: FakeAnthropic
) -> None:
    settings = make_settings(anthropic_api_key=SecretStr(KEY), anthropic_base_url=fake_api.base_url)
    host = build_host(settings)
    await host.start()
    try:
        agent = make_agent(host.repo, "Andy")
        with host.db.session() as s:
            cfg = s.get(ContainerConfig, agent.id)
            assert cfg is not None
            cfg.provider = "anthropic"
        wire_chat(host.repo, agent, "local")
        fake_api.push(
            tool_call("bash", {"command": "echo sandboxed > note.txt && cat note.txt && pwd"}),
            tool_call("send_file", {"path": "note.txt", "text": "your note"}),
            tool_call(
                "str_replace_based_edit_tool",
                {"command": "create", "path": "CLAUDE.md", "file_text": "The user is Carol."},
            ),
            reply("done in the sandbox"),
        )
        exchange = await say(settings.cli_socket, "make a note", timeout=WAIT_S)
        assert texts(exchange) == ["your note", "done in the sandbox"]
        assert exchange.replies[0]["files"] == ["note.txt"]
        bash_out = fake_api.requests[1].tool_results()[0]["content"]
        assert bash_out == "sandboxed\n/workspace/agent"  # the group folder, as mounted
        memory = settings.groups_path / agent.folder / "CLAUDE.md"
        assert memory.read_text() == "The user is Carol."  # written through the mount
        assert {k.lower(): v for k, v in fake_api.requests[0].headers.items()}["x-api-key"] == KEY

        (session,) = host.repo.sessions()
        await host.supervisor.stop(session.id)
        await until(lambda: _none_running(host), what="the sandbox to stop")
        fake_api.push(reply("You are Carol."))
        again = await say(settings.cli_socket, "who am I?", timeout=WAIT_S)
        assert texts(again) == ["You are Carol."]
        resumed = fake_api.requests[-1]
        assert "make a note" in resumed.all_text()  # the transcript survived the restart
        assert "The user is Carol." in resumed.system_text  # and so did the memory
    finally:
        await host.stop()


async def _none_running(host: Host) -> bool:
    return not await live_runners(host)
