"""A full data disk: the sender is told, nothing accepted is lost, the host recovers by itself."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from nanoclaw.channels.cli.client import NotDeliveredError
from nanoclaw.host import Host, build_host
from nanoclaw.settings import Settings
from tests.chat_client import ChatClient
from tests.helpers import make_agent, say, texts, wire_chat

MOCK = "(mock model, no API key configured) heard: "
TMPFS_SIZE = "24m"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
async def host_on_small_disk(settings: Settings, small_disk: Path) -> AsyncIterator[Host]:
    instance = build_host(
        settings.model_copy(
            update={
                "data_dir": small_disk / "data",
                "sweep_interval_s": 0.5,
                "retry_backoff_base_s": 0.2,
            }
        )
    )
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


def fill(disk: Path) -> Path:
    """Write a filler file until the filesystem refuses another byte."""
    filler = disk / "filler"
    chunk = b"\0" * (256 * 1024)
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 512)
    return filler


async def test_a_full_disk_refuses_with_a_notice_loses_nothing_and_recovers(
    host_on_small_disk: Host, small_disk: Path
) -> None:
    host = host_on_small_disk
    andy = make_agent(host.repo, "Andy")
    wire_chat(host.repo, andy, "local")
    assert texts(await say(host.settings.cli_socket, "before")) == [f"Andy {MOCK}before"]

    async with ChatClient(host.settings.cli_socket, "local", "alice") as chat:
        # Accepted while there is space; its turn runs into the full disk.
        await chat.say("!sleep 1 accepted before the disk filled")
        await chat.wait_for(lambda f: f.get("type") == "accepted")
        filler = fill(small_disk)

        with pytest.raises(NotDeliveredError) as refused:
            await say(host.settings.cli_socket, "while full")
        assert refused.value.reason == "storage_full"

        # The accepted turn cannot write its reply: its runner gives up and exits.
        for _ in range(600):
            if not host.supervisor.running_sessions():
                break
            await asyncio.sleep(0.05)
        assert not host.supervisor.running_sessions()
        filler.unlink()  # space returns; nothing else is done by hand
        reply = await chat.reply_containing("accepted before the disk filled", within_s=60)
        assert "Andy" in str(reply["text"])

    assert texts(await say(host.settings.cli_socket, "after")) == [f"Andy {MOCK}after"]
