"""A terminal client that stops reading (a suspended ``nanoclaw chat``) stalls no other chat."""

from __future__ import annotations

import socket

from nanoclaw.host import Host
from tests.chat_client import ChatClient
from tests.helpers import make_agent, until, wire_chat


async def test_a_client_that_never_reads_is_cut_off_its_replies_kept_and_others_answered(
    host: Host,
) -> None:
    robin = make_agent(host.repo, "Robin")
    wire_chat(host.repo, robin, "stuck")
    wire_chat(host.repo, robin, "other")
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(str(host.settings.cli_socket))
    stuck.sendall(b'{"type":"hello","chat":"stuck"}\n')  # then it never reads again
    await until(lambda: host.cli.clients_of("stuck") == 1)
    try:
        big = "z" * 65_536
        for n in range(40):  # 2.6 MB of host notices for a client that reads nothing
            assert await host.channels.notify("cli", "stuck", None, f"{n} {big}")
        async with ChatClient(host.settings.cli_socket, "other", "bo") as other:
            await other.say("are you there?")
            await other.reply_containing("heard: are you there?", within_s=30)
        await until(lambda: host.cli.clients_of("stuck") == 0)  # cut off, not waited for
        assert host.cli.backlog.counts("stuck") == (40, 0)  # every reply kept for it
        async with ChatClient(host.settings.cli_socket, "stuck", "al") as back:
            assert [r.split(" ")[0] for r in back.replies()] == [str(n) for n in range(40)]
    finally:
        stuck.close()
