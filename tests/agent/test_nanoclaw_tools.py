"""Every NanoClaw tool end to end: fake model → runner tool → outbound row → host delivery."""

from __future__ import annotations

import asyncio
import json

from nanoclaw.db.models import ContainerConfig
from nanoclaw.host import Host
from tests.agent.conftest import (
    ChatListener,
    claude_agent,
    eventually,
    inbound_rows,
    make_owner,
    session_layout,
)
from tests.fakes.anthropic_server import FakeAnthropic, Recorded, reply, tool_call
from tests.helpers import say, texts


async def test_send_message_and_send_file_reach_the_chat(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    agent = claude_agent(agent_host)
    group_dir = agent_host.settings.groups_path / agent.folder
    group_dir.mkdir(parents=True, exist_ok=True)
    (group_dir / "report.txt").write_text("quarterly numbers")
    fake_api.push(
        tool_call("send_message", {"text": "working on it"}),
        tool_call("send_file", {"path": "report.txt", "text": "here", "filename": "../r?.txt"}),
        reply("all done"),
    )
    exchange = await say(agent_host.settings.cli_socket, "send me the report")
    assert texts(exchange) == ["working on it", "here", "all done"]
    file_frame = exchange.replies[1]
    assert file_frame["files"] == ["r_.txt"]  # a confined, plain name
    results = [fake_api.requests[i].tool_results()[0] for i in (1, 2)]
    assert results[0]["content"].startswith("Message sent (id: ")
    assert results[1]["content"].startswith("File r_.txt sent")
    layout = session_layout(agent_host, agent)
    assert list(layout.outbox.iterdir()) == []  # the host cleared the delivered file


async def test_unknown_destination_is_reported_to_the_model(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    claude_agent(agent_host)
    fake_api.push(tool_call("send_message", {"to": "nobody", "text": "x"}), reply("ok"))
    await say(agent_host.settings.cli_socket, "hi")
    (result,) = fake_api.requests[1].tool_results()
    assert result["is_error"] is True
    assert "unknown destination 'nobody'" in result["content"]


async def test_edit_message_and_add_reaction_target_platform_ids(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    claude_agent(agent_host)
    fake_api.push(reply("first version"))
    first = await say(agent_host.settings.cli_socket, "hello")
    platform_id = first.replies[0]["id"]
    layout = session_layout(agent_host, agent_host.repo.agent_group("Andy"))
    (user_row,) = inbound_rows(layout, "kind = 'chat'")
    from tests.agent.conftest import outbound_query

    ((reply_seq,),) = outbound_query(layout, "SELECT seq FROM messages_out WHERE kind='chat'")
    fake_api.push(
        tool_call("edit_message", {"message_id": reply_seq, "text": "second version"}),
        tool_call("add_reaction", {"message_id": user_row["seq"], "emoji": "👍"}),
        reply("edited"),
    )
    exchange = await say(agent_host.settings.cli_socket, "please fix it")
    edit, reaction, final = exchange.replies
    assert edit["operation"] == "edit" and edit["text"] == "second version"
    assert reaction["operation"] == "reaction" and reaction["text"] == "👍"
    assert final["text"] == "edited"
    rows = json.loads(
        json.dumps(
            [
                json.loads(c)
                for (c,) in outbound_query(
                    layout, "SELECT content FROM messages_out WHERE content LIKE '%operation%'"
                )
            ]
        )
    )
    assert rows[0]["message_id"] == platform_id  # the delivered reply's platform id
    # the user's platform message (routed ids are per chat; the platform's id travels along)
    assert rows[1]["message_id"] == json.loads(user_row["content"])["platform_message_id"]


async def test_ask_user_question_round_trip_through_a_card(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    claude_agent(agent_host)
    fake_api.push(
        tool_call(
            "ask_user_question",
            {"title": "Lunch", "question": "Pizza or salad?", "options": ["pizza", "salad"]},
        ),
        reply("salad it is"),
    )
    async with ChatListener(agent_host.settings.cli_socket) as chat:
        turn = asyncio.create_task(say(agent_host.settings.cli_socket, "what for lunch?"))
        card = await chat.wait_for(lambda f: "card" in f)
        assert card["card"]["question"] == "Pizza or salad?"
        assert [o["value"] for o in card["card"]["options"]] == ["pizza", "salad"]
        await chat.answer(card["card"]["question_id"], "salad")
        exchange = await turn
    assert texts(exchange)[-1] == "salad it is"
    (result,) = fake_api.requests[1].tool_results()
    assert result["content"] == "The user answered: salad"
    assert len(fake_api.requests) == 2  # the answer row did not start a turn of its own


async def test_ask_user_question_times_out(agent_host: Host, fake_api: FakeAnthropic) -> None:
    claude_agent(agent_host)
    fake_api.push(
        tool_call("ask_user_question", {"question": "Yes?", "options": ["yes"], "timeout_s": 0.5}),
        reply("no answer then"),
    )
    exchange = await say(agent_host.settings.cli_socket, "ask me")
    assert texts(exchange)[-1] == "no answer then"
    (result,) = fake_api.requests[1].tool_results()
    assert result["is_error"] is True and "timed out after 0.5s" in result["content"]


async def test_task_tools_insert_and_change_series_rows(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    agent = claude_agent(agent_host)
    socket = agent_host.settings.cli_socket
    fake_api.push(
        tool_call(
            "schedule_task",
            {
                "prompt": "water the plants",
                "process_after": "2099-01-01T09:00",
                "recurrence": "0 9 * * *",
            },
        ),
        reply("scheduled"),
    )
    await say(socket, "remind me daily")
    (scheduled,) = fake_api.requests[1].tool_results()
    assert (
        scheduled["is_error"] is False and "scheduled for 2099-01-01T09:00" in scheduled["content"]
    )
    layout = session_layout(agent_host, agent)
    (task,) = inbound_rows(layout, "kind = 'task'")
    task_id = task["id"]
    assert task["series_id"] == task_id and task["status"] == "pending"
    assert task["recurrence"] == "0 9 * * *" and task["process_after"].startswith(
        "2099-01-01T09:00"
    )
    assert json.loads(task["content"]) == {"prompt": "water the plants"}
    assert task["channel_type"] == "cli" and task["platform_id"] == "local"

    fake_api.push(
        tool_call("list_tasks", {}),
        tool_call("pause_task", {"task_id": task_id}),
        reply("paused"),
    )
    await say(socket, "pause it")
    listed = fake_api.requests[3].tool_results()[0]["content"]
    assert task_id in listed and "repeats 0 9 * * *" in listed
    assert inbound_rows(layout, "kind = 'task'")[0]["status"] == "paused"

    fake_api.push(
        tool_call("resume_task", {"task_id": task_id}),
        tool_call(
            "update_task", {"task_id": task_id, "prompt": "water the cactus", "recurrence": ""}
        ),
        reply("updated"),
    )
    await say(socket, "resume and change it")
    (row,) = inbound_rows(layout, "kind = 'task'")
    assert row["status"] == "pending" and row["recurrence"] is None
    assert json.loads(row["content"])["prompt"] == "water the cactus"

    fake_api.push(
        tool_call("cancel_task", {"task_id": task_id}),
        tool_call("cancel_task", {"task_id": task_id}),
        reply("cancelled"),
    )
    await say(socket, "cancel it")
    (row,) = inbound_rows(layout, "kind = 'task'")
    assert row["status"] == "completed"
    again = fake_api.requests[-1].tool_results()[0]
    assert again["is_error"] is True and "no live task matched" in again["content"]


async def test_schedule_task_rejects_a_bad_cron_on_the_host(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    agent = claude_agent(agent_host)
    fake_api.push(
        tool_call(
            "schedule_task",
            {"prompt": "x", "process_after": "2099-01-01T09:00", "recurrence": "99 9 * * *"},
        ),
        reply("ok"),
    )
    await say(agent_host.settings.cli_socket, "schedule")
    (result,) = fake_api.requests[1].tool_results()
    assert result["is_error"] is True and "schedule_task" in result["content"]
    assert inbound_rows(session_layout(agent_host, agent), "kind = 'task'") == []


async def test_create_agent_makes_a_group_its_files_and_both_destinations(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    parent = claude_agent(agent_host)
    make_owner(agent_host)  # alice may create agents
    fake_api.push(
        tool_call("create_agent", {"name": "Researcher", "instructions": "You dig into facts."}),
        reply('<message to="researcher">find the moon distance</message>'),
        reply("<internal>nothing to say back</internal>"),  # the child's turn
    )
    await say(agent_host.settings.cli_socket, "make a helper")
    (result,) = fake_api.requests[1].tool_results()
    assert result["is_error"] is False, result
    assert 'Agent "Researcher" created' in result["content"]
    child = agent_host.repo.agent_group("Researcher")
    local = agent_host.settings.groups_path / child.folder / "CLAUDE.local.md"
    assert local.read_text().strip() == "You dig into facts."
    parent_dests = {d.local_name: d.target_id for d in agent_host.repo.destinations(parent.id)}
    child_dests = {d.local_name: d.target_id for d in agent_host.repo.destinations(child.id)}
    assert parent_dests["researcher"] == child.id and child_dests["parent"] == parent.id
    assert agent_host.repo.container_config(child.id).provider == "anthropic"

    # The parent's <message to="researcher"> reached the new agent's own session and runner.
    def child_request() -> Recorded | None:
        found = [r for r in fake_api.requests if "# You are Researcher" in r.system_text]
        return found[0] if found else None

    request = await eventually(child_request)
    assert "find the moon distance" in request.all_text()
    assert "You dig into facts." in request.system_text


async def test_install_packages_is_validated_and_says_what_it_could_not_do(
    agent_host: Host, fake_api: FakeAnthropic
) -> None:
    agent = claude_agent(agent_host)
    make_owner(agent_host)
    fake_api.push(
        tool_call("install_packages", {"apt": ["Bad Name"]}),
        tool_call("install_packages", {"apt": ["jq", "ripgrep"], "reason": "search"}),
        reply("ok"),
    )
    await say(agent_host.settings.cli_socket, "install tools")
    bad = fake_api.requests[1].tool_results()[0]
    refused = fake_api.requests[2].tool_results()[0]
    assert bad["is_error"] is True and "invalid apt package names" in bad["content"]
    # Without Docker there is no image to put Debian packages in: the agent is told so.
    assert refused["is_error"] is True and "only possible with Docker" in refused["content"]
    with agent_host.db.session() as s:
        cfg = s.get(ContainerConfig, agent.id)
        assert cfg is not None and json.loads(cfg.packages_apt or "[]") == []
        assert cfg.packages_status is not None and '"ok": false' in cfg.packages_status
