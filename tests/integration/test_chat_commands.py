"""Every admin chat command, run by an admin and by a non-admin, through the real CLI channel."""

from __future__ import annotations

import json
import sqlite3

import pytest

from nanoclaw.host import Host
from nanoclaw.sessions.store import InboundMessage
from tests.chat_client import ChatClient
from tests.helpers import make_agent, say, texts, wire_chat

OWNER = "cli:olive"

COMMANDS = [
    "/status", "/agents", "/channels", "/wire lab Andy", "/unwire team Andy",
    "/engage team Andy mention", "/policy team strict", "/users", "/grant bob admin",
    "/revoke olive owner", "/members Andy", "/pending", "/approve appr-x", "/deny appr-x",
    "/tasks", "/usage", "/destinations Andy", "/mounts Andy", "/restart Andy",
]  # fmt: skip


@pytest.fixture
def world(host: Host) -> Host:
    host.repo.upsert_user(OWNER, kind="cli", display_name="olive")
    host.repo.grant_role(OWNER, "owner", granted_by="test")
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "team", policy="public")
    return host


def inbound_texts(host: Host) -> list[str]:
    found: list[str] = []
    for session in host.repo.sessions():
        layout = host.sessions.layout(session)
        with sqlite3.connect(layout.inbound_db) as conn:
            for (content,) in conn.execute("SELECT content FROM messages_in"):
                found.append(str(json.loads(content).get("text")))
    return found


async def admin(host: Host, text: str, chat: str = "ops") -> str:
    exchange = await say(host.settings.cli_socket, text, chat=chat, sender="olive")
    return "\n".join(texts(exchange))


@pytest.mark.parametrize("command", COMMANDS)
async def test_non_admin_gets_permission_denied_and_the_agent_never_sees_it(
    world: Host, command: str
) -> None:
    exchange = await say(world.settings.cli_socket, command, chat="team", sender="bob")
    name = command.split()[0]
    assert texts(exchange) == [f"Permission denied: {name} requires admin access."]
    assert not any(t.startswith("/") for t in inbound_texts(world))
    assert len(world.repo.wirings()) == 1 and world.permissions.store.count_owners() == 1


async def test_non_admin_clear_is_denied_through_the_adapter(world: Host) -> None:
    async with ChatClient(world.settings.cli_socket, "team", "bob") as bob:
        await bob.say("/clear")
        await bob.reply_containing("Permission denied: /clear requires admin access.")
    assert "/clear" not in inbound_texts(world)


async def test_admin_clear_reaches_the_agent(world: Host) -> None:
    exchange = await say(world.settings.cli_socket, "/clear", chat="team", sender="olive")
    assert texts(exchange) == ["Session cleared."]


async def test_help_lists_every_command_and_explains_one(world: Host) -> None:
    text = await admin(world, "/help")
    for command in [*COMMANDS, "/help", "/clear"]:
        assert command.split()[0] in text
    assert (await admin(world, "/help wire")).startswith("/wire <chat> <agent>")
    assert "No command /nope" in await admin(world, "/help nope")


async def test_help_answers_everyone_with_the_commands_they_may_use(world: Host) -> None:
    exchange = await say(world.settings.cli_socket, "/HELP", chat="team", sender="bob")
    (text,) = texts(exchange)
    assert text.startswith("Commands you may use:") and "/help" in text
    assert "/wire" not in text and "Permission denied" not in text
    assert not any(t.startswith("/") for t in inbound_texts(world))  # never reached the agent
    assert "/wire <chat>" in await admin(world, "/Help")  # an admin sees every command


async def test_commands_are_case_insensitive(world: Host) -> None:
    assert "agents 1" in await admin(world, "/STATUS")
    exchange = await say(world.settings.cli_socket, "/CLEAR", chat="team", sender="olive")
    assert texts(exchange) == ["Session cleared."]
    async with ChatClient(world.settings.cli_socket, "team", "bob") as bob:
        await bob.say("/Clear")
        await bob.reply_containing("Permission denied: /clear requires admin access.")


async def test_clear_in_a_batch_clears_first_then_answers_the_rest(world: Host) -> None:
    andy = world.repo.agent_group("Andy")
    mg = world.repo.messaging_group("cli", "team")
    assert mg is not None
    session, layout = world.sessions.resolve(
        agent_group_id=andy.id, messaging_group_id=mg.id, thread_id=None, mode="shared"
    )
    world.sessions.store.insert_messages(
        layout,
        [
            InboundMessage(id="before", kind="chat", content={"text": "first question",
                           "sender": "olive"}, channel_type="cli", platform_id="team"),
            InboundMessage(id="clear", kind="chat", content={"text": "/clear", "sender": "olive"},
                           channel_type="cli", platform_id="team"),
            InboundMessage(id="after", kind="chat", content={"text": "second question",
                           "sender": "olive"}, channel_type="cli", platform_id="team"),
        ],
    )  # fmt: skip
    async with ChatClient(world.settings.cli_socket, "team", "olive") as olive:
        await world.supervisor.wake(session.id)
        await olive.reply_containing("Session cleared.")
        answer = str((await olive.reply_containing("heard:"))["text"])
        cleared_at = next(i for i, f in enumerate(olive.frames) if "cleared" in str(f.get("text")))
        assert (
            olive.frames.index(next(f for f in olive.frames if "heard" in str(f.get("text"))))
            > cleared_at
        )
    assert answer.endswith("heard: first question / second question")


async def test_an_accumulated_clear_is_never_stored_and_never_wipes(world: Host) -> None:
    andy = world.repo.agent_group("Andy")
    wire_chat(world.repo, andy, "room", policy="public", engage_mode="pattern",
              engage_pattern="^@andy", ignored_message_policy="accumulate", is_group=True)  # fmt: skip
    async with ChatClient(world.settings.cli_socket, "room", "bob") as bob:
        await bob.say("/clear")  # a non-admin: refused, whatever the wiring's policy
        await bob.reply_containing("Permission denied: /clear requires admin access.")
    async with ChatClient(world.settings.cli_socket, "room", "olive") as olive:
        for text in ("/clear", "just chatting"):  # an admin's /clear, not engaging: no row
            sent = await olive.say(text)
            await olive.wait_for(lambda f, i=sent: f.get("id") == i)  # type: ignore[misc]
    assert "/clear" not in inbound_texts(world) and "just chatting" in inbound_texts(world)


async def test_read_commands(world: Host) -> None:
    assert "agents 1" in await admin(world, "/status")
    assert "name=Andy" in await admin(world, "/agents")
    assert "chat=cli/team" in await admin(world, "/channels")
    assert "user=cli:olive" in await admin(world, "/users")
    assert "(none)" in await admin(world, "/pending")
    assert "(none)" in await admin(world, "/members Andy")


async def test_wire_engage_policy_unwire(world: Host) -> None:
    assert (
        await admin(world, "/wire lab Andy mention") == "Wired cli/lab to Andy (mention, shared)."
    )
    assert "already wired" in await admin(world, "/wire lab Andy")
    assert "engages on pattern ^hey" in await admin(world, "/engage lab Andy pattern ^hey")
    lab = world.repo.messaging_group("cli", "lab")
    assert lab is not None
    (wiring,) = world.repo.wirings_for(lab.id)
    assert (wiring.engage_mode, wiring.engage_pattern) == ("pattern", "^hey")
    assert "request_approval" in await admin(world, "/policy lab request_approval")
    assert world.repo.messaging_group("cli", "lab").unknown_sender_policy == "request_approval"  # type: ignore[union-attr]
    assert await admin(world, "/unwire cli/lab Andy") == "Unwired cli/lab from Andy."
    assert world.repo.wirings_for(lab.id) == []
    # per-thread session mode and pattern wiring of the current chat
    assert "(pattern ., agent-shared)" in await admin(
        world, "/wire here Andy agent-shared", chat="ops2"
    )


def runner_pid(host: Host) -> int:
    (session,) = host.repo.sessions()
    with sqlite3.connect(host.sessions.layout(session).outbound_db) as conn:
        (pid,) = conn.execute("SELECT pid FROM runner_state WHERE id = 1").fetchone()
    return int(pid)


async def test_a_chat_wired_while_the_runner_runs_is_reachable_without_a_restart(
    world: Host,
) -> None:
    sock = world.settings.cli_socket
    async with ChatClient(sock, "team", "bob") as team, ChatClient(sock, "lab", "lee") as lab:
        await team.say("hello")
        await team.reply_containing("heard: hello")
        pid = runner_pid(world)
        assert await admin(world, "/wire lab Andy mention") == (
            "Wired cli/lab to Andy (mention, shared)."
        )
        await team.say("!to lab the lab is open")
        arrived = await lab.reply_containing("the lab is open")
    assert arrived["chat"] == "lab"
    assert runner_pid(world) == pid  # the same runner: it was not restarted to learn the name


async def test_usage_errors_are_clear(world: Host) -> None:
    assert (await admin(world, "/wire")).startswith("Name a chat and an agent.\nUsage: /wire")
    assert "Usage: /wire" in await admin(world, "/wire lab Andy sometimes")
    assert "agent group not found: Nobody" in await admin(world, "/wire lab Nobody")
    assert "unknown policy" in await admin(world, "/policy team lax")
    assert "invalid regular expression" not in await admin(world, "/engage team Andy mention")
    assert "not a valid regular expression" in await admin(world, "/engage team Andy pattern (")
    assert "Usage: /members" in await admin(world, "/members Andy kick bob")
    assert "Could not read the arguments" in await admin(world, '/wire "lab Andy')


async def test_grant_revoke_and_members(world: Host) -> None:
    assert await admin(world, "/members Andy add bob") == "cli:bob is now a member of Andy."
    assert "user=cli:bob" in await admin(world, "/members Andy")
    assert "no longer a member" in await admin(world, "/members Andy remove bob")
    assert await admin(world, "/grant bob admin Andy") == "Granted admin of Andy to cli:bob."
    # bob, now admin of Andy, may use commands within that scope only
    bob = await say(world.settings.cli_socket, "/agents", chat="team", sender="bob")
    assert "name=Andy" in texts(bob)[0]
    make_agent(world.repo, "Zed")
    denied = await say(world.settings.cli_socket, "/wire lab Zed", chat="team", sender="bob")
    assert texts(denied)[0].startswith("Permission denied")
    denied = await say(world.settings.cli_socket, "/grant carol owner", chat="team", sender="bob")
    assert texts(denied)[0].startswith("Permission denied")
    assert "Revoked admin of Andy" in await admin(world, "/revoke bob admin Andy")
    assert "last owner" in await admin(world, "/revoke olive owner")


async def test_approve_and_deny_by_command(world: Host) -> None:
    andy = world.repo.agent_group("Andy")
    wire_chat(world.repo, andy, "gated", policy="request_approval")
    async with ChatClient(world.settings.cli_socket, "gated", "bob") as bob:
        await bob.say("hi")
        await bob.wait_for(lambda f: f.get("type") == "notice")
        (pending,) = world.permissions.store.approvals()
        assert pending.id in await admin(world, "/pending")
        assert "Approved" in await admin(world, f"/approve {pending.id}")
        await bob.reply_containing("heard: hi")
    async with ChatClient(world.settings.cli_socket, "gated", "carol") as carol:
        await carol.say("me too")
        await carol.wait_for(lambda f: f.get("type") == "notice")
        (pending,) = world.permissions.store.approvals()
        assert (await admin(world, f"/deny {pending.id}")).startswith("Denied")
    assert "already denied" in await admin(world, f"/approve {pending.id}")
    assert "request not found" in await admin(world, "/approve appr-nope")


async def test_tasks_list_pause_resume_cancel(world: Host) -> None:
    from nanoclaw.sessions.store import InboundMessage

    andy = world.repo.agent_group("Andy")
    team = world.repo.messaging_group("cli", "team")
    assert team is not None
    session, layout = world.sessions.resolve(
        agent_group_id=andy.id, messaging_group_id=team.id, thread_id=None, mode="shared"
    )
    world.store.insert_messages(
        layout,
        [
            InboundMessage(
                id="task-1", kind="task", content={"prompt": "water the plants"},
                channel_type="cli", platform_id="team", process_after="2999-01-01T00:00:00.000000Z",
                recurrence="0 9 * * *", series_id="task-1",
            )
        ],
    )  # fmt: skip
    listing = await admin(world, "/tasks")
    assert "id=task-1" in listing and "water the plants" in listing and "status=pending" in listing
    assert await admin(world, "/tasks pause task-1") == "Paused task-1 (1 row(s))."
    assert "status=paused" in await admin(world, "/tasks list Andy")
    assert await admin(world, "/tasks resume task-1") == "Resumed task-1 (1 row(s))."
    assert await admin(world, "/tasks cancel task-1") == "Cancelled task-1 (1 row(s))."
    assert "(none)" in await admin(world, "/tasks")
    assert "task not found" in await admin(world, "/tasks pause nope")
    assert "Usage: /tasks" in await admin(world, "/tasks explode")
    assert session.id


async def test_usage_per_agent(world: Host) -> None:
    await say(world.settings.cli_socket, "hello", chat="team", sender="olive")
    text = await admin(world, "/usage")
    assert text.startswith("Usage, last 30 days:") and "Andy: 1 turns" in text
    assert "Andy" in await admin(world, "/usage Andy")
    assert "agent group not found" in await admin(world, "/usage Nobody")
