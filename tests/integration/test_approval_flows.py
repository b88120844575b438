"""Approval flows end to end through the CLI channel: two named chats act as two users."""

from __future__ import annotations

import pytest

from nanoclaw.channels.base import InboundEvent, InboundMessage
from nanoclaw.errors import NotFoundError
from nanoclaw.host import Host
from tests.chat_client import ChatClient
from tests.helpers import make_agent, wire_chat

OWNER = "cli:olive"


def setup_owner(host: Host) -> None:
    host.repo.upsert_user(OWNER, kind="cli", display_name="olive")
    host.repo.grant_role(OWNER, "owner", granted_by="test")


async def test_unknown_sender_is_approved_member_added_and_message_replayed(host: Host) -> None:
    setup_owner(host)
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "team", policy="request_approval")
    sock = host.settings.cli_socket
    async with (
        ChatClient(sock, "team", "bob") as bob,
        ChatClient(sock, "dm-olive", "olive") as olive,
    ):
        await bob.say("hello andy")
        notice = await bob.wait_for(lambda f: f.get("type") == "notice")
        assert notice["reason"] == "unknown_sender_request_approval"
        await bob.say("are you there?")  # a second message: still one request
        await bob.wait_for(lambda f: f.get("type") == "notice", start=len(bob.frames))
        card = await olive.card()
        assert card["title"] == "👤 New sender"
        assert "cli:bob" in card["question"] and "Andy" in card["question"]
        assert [o["value"] for o in card["options"]] == ["approve", "deny"]
        text = next(f["text"] for f in olive.frames if f.get("card"))
        assert "1. Allow" in text and "2. Deny" in text and "Reply with the number" in text
        assert len(host.permissions.store.approvals()) == 1  # deduplicated per (chat, sender)

        await olive.say("1")
        await olive.reply_containing("Approved")
        # the original message is replayed to the agent, whose reply reaches bob's chat
        await bob.reply_containing("heard: hello andy")
    membership = host.repo.membership("cli:bob")
    assert membership is not None and andy.id in membership.member_of


async def test_denied_sender_stays_out_and_nothing_reaches_the_agent(host: Host) -> None:
    setup_owner(host)
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "team", policy="request_approval")
    sock = host.settings.cli_socket
    async with (
        ChatClient(sock, "team", "bob") as bob,
        ChatClient(sock, "dm-olive", "olive") as olive,
    ):
        await bob.say("let me in")
        card = await olive.card()
        reply = await olive.click(card["question_id"], "deny")
        assert reply["text"].startswith("Denied")
        # the decision is durable before the click is answered: the card is closed as denied
        # and no session (so no agent) ever received bob's message
        assert [a.status for a in host.permissions.store.approvals(status=None)] == ["denied"]
        assert host.repo.sessions() == []
        assert not any("heard" in r for r in bob.replies())
    membership = host.repo.membership("cli:bob")
    assert membership is not None and not membership.member_of
    assert host.repo.sessions() == []


async def test_strict_chat_drops_and_audits_unknown_senders_without_a_card(host: Host) -> None:
    setup_owner(host)
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "team", policy="strict")
    sock = host.settings.cli_socket
    async with ChatClient(sock, "team", "bob") as bob:
        await bob.say("hi")
        notice = await bob.wait_for(lambda f: f.get("type") == "notice")
        assert notice["reason"] == "unknown_sender_strict"
    assert host.permissions.store.approvals() == []
    assert [d.reason for d in host.repo.dropped()] == ["unknown_sender_strict"]


async def test_unauthorized_answers_are_ignored(host: Host) -> None:
    setup_owner(host)
    andy = make_agent(host.repo, "Andy")
    zed = make_agent(host.repo, "Zed")
    host.repo.upsert_user("cli:zadmin", kind="cli", display_name="zadmin")
    host.repo.grant_role("cli:zadmin", "admin", agent_group_id=zed.id, granted_by="test")
    wire_chat(host.repo, andy, "team", policy="request_approval")
    sock = host.settings.cli_socket
    async with (
        ChatClient(sock, "team", "bob") as bob,
        ChatClient(sock, "dm-olive", "olive") as olive,
        ChatClient(sock, "dm-olive", "mallory") as mallory,
        ChatClient(sock, "side", "zadmin") as zadmin,
    ):
        await bob.say("hello")
        card = await olive.card()
        qid = card["question_id"]
        # a stranger clicks, and types the number into the approver's chat
        assert (await mallory.click(qid, "approve"))["text"] == "You may not answer this request."
        # an admin of another agent group cannot answer either, by click or by command
        assert (await zadmin.click(qid, "approve"))["text"] == "You may not answer this request."
        start = len(zadmin.frames)
        await zadmin.say(f"/approve {qid}")
        await zadmin.reply_containing("You may not answer", start=start)
        assert host.permissions.store.approval(qid).status == "pending"  # type: ignore[union-attr]
        membership = host.repo.membership("cli:bob")
        assert membership is not None and not membership.member_of
        # the approver's answer still works afterwards
        await olive.say("1")
        await olive.reply_containing("Approved")
        await bob.reply_containing("heard: hello")
        # answering twice changes nothing
        assert "already" in (await olive.click(qid, "deny"))["text"]


async def test_unwired_chat_registration_connects_to_an_existing_agent(host: Host) -> None:
    setup_owner(host)
    andy = make_agent(host.repo, "Andy")
    sock = host.settings.cli_socket
    async with (
        ChatClient(sock, "newroom", "bob") as bob,
        ChatClient(sock, "dm-olive", "olive") as olive,
    ):
        await bob.say("anyone here?")
        notice = await bob.wait_for(lambda f: f.get("type") == "notice")
        assert notice["reason"] == "no_agent_wired"
        start = len(bob.frames)
        await bob.say("hello?")  # one registration request per chat
        # its notice comes back only once routing (and any card request) is done with it
        await bob.wait_for(lambda f: f.get("type") == "notice", start=start)
        card = await olive.card()
        assert card["title"] == "💬 New direct message"
        labels = [o["label"] for o in card["options"]]
        assert labels == ["Connect to Andy", "Create a new agent", "Reject (keep this chat silent)"]
        assert len(host.permissions.store.approvals()) == 1
        await olive.say("1")
        await olive.reply_containing("Connected")
        await bob.reply_containing("heard: anyone here?")
    mg = host.repo.messaging_group("cli", "newroom")
    assert mg is not None
    (wiring,) = host.repo.wirings_for(mg.id)
    assert (wiring.agent_group_id, wiring.engage_mode, wiring.engage_pattern) == (
        andy.id,
        "pattern",
        ".",
    )
    assert (wiring.sender_scope, wiring.session_mode) == ("known", "shared")
    membership = host.repo.membership("cli:bob")
    assert membership is not None and andy.id in membership.member_of


async def ask_for_a_new_agent(bob: ChatClient, olive: ChatClient) -> None:
    """Bob writes in an unwired chat; the owner picks "Create a new agent" on its card."""
    await bob.say("set me up")
    await olive.card()
    await olive.say("2")
    await olive.reply_containing("Reply with a name")


async def test_unwired_chat_registration_creates_a_new_agent(host: Host) -> None:
    setup_owner(host)
    make_agent(host.repo, "Andy")
    sock = host.settings.cli_socket
    async with (
        ChatClient(sock, "lab", "bob") as bob,
        ChatClient(sock, "dm-olive", "olive") as olive,
    ):
        await ask_for_a_new_agent(bob, olive)
        await olive.say("Lab Bot")
        await olive.reply_containing('Agent "Lab Bot" created and connected')
        await bob.reply_containing("Lab Bot (mock model")
    group = host.repo.agent_group("Lab Bot")
    assert (host.settings.groups_path / group.folder / "CLAUDE.md").exists()


async def test_a_name_for_a_card_answered_meanwhile_creates_no_agent(host: Host) -> None:
    setup_owner(host)
    make_agent(host.repo, "Andy")
    sock = host.settings.cli_socket
    approvals = host.permissions.approvals
    async with (
        ChatClient(sock, "lab", "bob") as bob,
        ChatClient(sock, "dm-olive", "olive") as olive,
    ):
        await ask_for_a_new_agent(bob, olive)
    # The route read the open card; another answer closes it before the name is taken.
    (card,) = [c for c in approvals.store.approvals() if c.stage == "name"]
    assert approvals.store.decide(card.id, status="denied", by=OWNER, decision="reject")
    membership = host.repo.membership(OWNER)
    naming = InboundEvent(
        "cli", "dm-olive", None, InboundMessage(id="n1", text="Lab Bot", sender="olive")
    )
    assert await approvals.intercept(naming, membership, [card])
    with pytest.raises(NotFoundError):
        host.repo.agent_group("Lab Bot")


async def test_rejected_chat_stays_silent_from_then_on(host: Host) -> None:
    setup_owner(host)
    make_agent(host.repo, "Andy")
    sock = host.settings.cli_socket
    async with (
        ChatClient(sock, "spam", "bob") as bob,
        ChatClient(sock, "dm-olive", "olive") as olive,
    ):
        await bob.say("buy now")
        # the first message's own notice comes first, so it cannot pass for the second's
        await bob.wait_for(lambda f: f.get("type") == "notice")
        await olive.card()
        await olive.say("3")
        await olive.reply_containing("Rejected")
        start = len(bob.frames)
        await bob.say("buy now!!")
        notice = await bob.wait_for(lambda f: f.get("type") == "notice", start=start)
        assert notice["reason"] == "channel_denied"
        # a card is recorded before it is sent: one approval is all there ever was
        assert len(host.permissions.store.approvals(status=None)) == 1
        assert sum(1 for f in olive.frames if f.get("card")) == 1
    mg = host.repo.messaging_group("cli", "spam")
    assert mg is not None and mg.denied_at is not None


async def test_no_card_without_an_owner_or_admin(host: Host) -> None:
    make_agent(host.repo, "Andy")
    async with ChatClient(host.settings.cli_socket, "lonely", "bob") as bob:
        await bob.say("hi")
        await bob.wait_for(lambda f: f.get("type") == "notice")
    assert host.permissions.store.approvals(status=None) == []


async def test_card_goes_to_the_scoped_admin_before_the_owner(host: Host) -> None:
    setup_owner(host)
    andy = make_agent(host.repo, "Andy")
    host.repo.upsert_user("cli:ada", kind="cli", display_name="ada")
    host.repo.grant_role("cli:ada", "admin", agent_group_id=andy.id, granted_by="test")
    wire_chat(host.repo, andy, "team", policy="request_approval")
    sock = host.settings.cli_socket
    async with ChatClient(sock, "team", "bob") as bob, ChatClient(sock, "dm-ada", "ada") as ada:
        await bob.say("hi")
        card = await ada.card()
        approval = host.permissions.store.approval(card["question_id"])
        assert approval is not None and approval.approver_user_id == "cli:ada"
        # the owner may answer a card addressed to a scoped admin
        async with ChatClient(sock, "elsewhere", "olive") as olive:
            assert "Approved" in (await olive.click(card["question_id"], "approve"))["text"]
        await bob.reply_containing("heard: hi")


async def test_cards_expire(host: Host) -> None:
    setup_owner(host)
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "team", policy="request_approval")
    host.permissions.approvals.ttl_s = 0.0
    sock = host.settings.cli_socket
    async with (
        ChatClient(sock, "team", "bob") as bob,
        ChatClient(sock, "dm-olive", "olive") as olive,
    ):
        await bob.say("hi")
        card = await olive.card()
        assert await host.permissions.approvals.expire_due() == 1
        await olive.reply_containing("Expired")
        assert "expired" in (await olive.click(card["question_id"], "approve"))["text"]
        start = len(olive.frames)
        await olive.say("1")  # no open card any more: not consumed as an answer
        await olive.wait_for(lambda f: f.get("type") in ("notice", "accepted"), start=start)
    assert host.permissions.store.approval(card["question_id"]).status == "expired"  # type: ignore[union-attr]
    membership = host.repo.membership("cli:bob")
    assert membership is not None and not membership.member_of
