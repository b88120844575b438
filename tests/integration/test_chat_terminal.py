"""``nanoclaw chat`` in a real pseudo-terminal (pexpect, read through pyte) against a real host."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_cli_commands import NANOCLAW, env, host_process, nanoclaw
from tests.pty_screen import PtyScreen

__all__ = ["env"]  # the fixture, shared with the other CLI tests
# Real host processes started (and restarted) per test: slow on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(300)

MOCK = "(mock model, no API key configured) heard: "


@pytest.fixture
def tty_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm-256color", "COLUMNS": "100"}


@pytest.fixture
def chat_screen(tty_env: dict[str, str]) -> Iterator[list[PtyScreen]]:
    screens: list[PtyScreen] = []
    yield screens
    for screen in screens:
        screen.close()


def open_chat(tty_env: dict[str, str], screens: list[PtyScreen], *args: str) -> PtyScreen:
    screen = PtyScreen([*NANOCLAW, "chat", *args], env=tty_env)
    screens.append(screen)
    screen.wait_for("local>")
    return screen


def pending_replies(env: dict[str, str], chat: str = "local") -> int:
    """Unacknowledged replies the host keeps for ``chat`` (read from outside, read-only)."""
    db = Path(env["NANOCLAW_DATA_DIR"]) / "nanoclaw.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM cli_replies WHERE chat = ? AND delivered_at IS NULL", (chat,)
        ).fetchone()
    return int(count)


def say_and_leave(env: dict[str, str], text: str) -> None:
    """A client sends ``text`` and disconnects as soon as the host accepted it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(env["NANOCLAW_CLI_SOCKET_PATH"])
        hello = {"type": "hello", "chat": "local", "replay": False}
        message = {"type": "message", "chat": "local", "sender": "al", "text": text}
        sock.sendall(json.dumps(hello).encode() + b"\n" + json.dumps(message).encode() + b"\n")
        with sock.makefile("rb") as frames:
            for line in frames:
                if json.loads(line)["type"] == "accepted":
                    return
    raise AssertionError("the host never accepted the message")


def wait_state(predicate: object, within_s: float = 60.0) -> None:
    import time

    assert callable(predicate)
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "state not reached"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def test_a_pasted_three_line_message_is_one_message_and_the_reply_keeps_its_lines(
    tty_env: dict[str, str], tmp_path: Path, chat_screen: list[PtyScreen]
) -> None:
    with host_process(tty_env, tmp_path):
        screen = open_chat(tty_env, chat_screen)
        screen.send("\x1b[200~line1\nline2\nline3\x1b[201~")  # a bracketed paste
        screen.wait_for("line3")
        screen.send("\r")
        screen.wait_for(f"Robin {MOCK}line1")
        lines = screen.lines()
        at = next(i for i, line in enumerate(lines) if line.endswith(f"{MOCK}line1"))
        # One message: the agent heard the three lines together (not "line1 / line2 ...").
        assert lines[at + 1 : at + 3] == ["line2", "line3"]
        assert " / " not in screen.text()
        assert "Robin:" in lines[at - 1]  # the replying agent's own name


def test_the_line_is_edited_with_the_arrow_keys_and_the_history_persists(
    tty_env: dict[str, str], tmp_path: Path, chat_screen: list[PtyScreen]
) -> None:
    with host_process(tty_env, tmp_path):
        screen = open_chat(tty_env, chat_screen)
        screen.send("abc\x1b[D\x1b[DX\r")  # abc ← ← X: an edit, not escape codes
        screen.wait_for(f"{MOCK}aXbc")
        screen.send("\x04")  # Ctrl-D leaves
        assert screen.wait_exit() == 0
        again = open_chat(tty_env, chat_screen)
        again.send("\x1b[A")  # Up: the last message, from the history file
        again.wait_for("local> aXbc")
    history = Path(tty_env["NANOCLAW_DATA_DIR"]) / "cli-history" / "local.history"
    assert "aXbc" in history.read_text()


def test_a_reply_arriving_while_typing_leaves_the_typed_text_intact_and_sent_whole(
    tty_env: dict[str, str], tmp_path: Path, chat_screen: list[PtyScreen]
) -> None:
    with host_process(tty_env, tmp_path):
        screen = open_chat(tty_env, chat_screen)
        screen.send("half typed")
        screen.wait_for("local> half typed")
        # A reply arrives in this chat while the line is being typed (sent from a script).
        result = nanoclaw(tty_env, "chat", "-m", "ping from a script", "--timeout", "60")
        assert result.returncode == 0, result.stderr
        screen.wait_for(f"{MOCK}ping from a script")

        def typed_line_below_the_reply(lines: list[str]) -> bool:
            shown = [line for line in lines if line.strip()]
            at = max(
                i for i, line in enumerate(shown) if line.endswith(f"{MOCK}ping from a script")
            )
            return shown[at + 1 :] == ["local> half typed"]

        # The reply printed above the prompt; the line being typed is still there, untouched.
        screen.wait_until(typed_line_below_the_reply)
        screen.send(" and finished\r")
        screen.wait_for(f"{MOCK}half typed and finished")


def test_ctrl_d_typed_while_a_long_reply_is_printing_still_leaves(
    tty_env: dict[str, str], tmp_path: Path, chat_screen: list[PtyScreen]
) -> None:
    with host_process(tty_env, tmp_path):
        screen = open_chat(tty_env, chat_screen)
        long_text = "".join(f"line {n:05d} of a long reply\n" for n in range(7000))  # ~190 kB
        say_and_leave(tty_env, long_text)
        screen.wait_for("line 00000 of a long reply", within_s=60)
        # The rest is far more than a pty holds: the chat is still printing it, blocked on this
        # unread terminal, when the key arrives.
        assert "line 06999" not in screen.raw
        screen.send("\x04")
        assert screen.wait_exit(within_s=60) == 0
    assert "line 06999 of a long reply" in screen.raw  # the whole reply was shown first


def test_a_card_is_answered_by_number_and_by_choosing_from_the_list(
    tty_env: dict[str, str], tmp_path: Path, chat_screen: list[PtyScreen]
) -> None:
    with host_process(tty_env, tmp_path):
        screen = open_chat(tty_env, chat_screen)
        screen.send("!ask Pick a colour | red | blue\r")
        screen.wait_for("2. blue")
        screen.send("2\r")
        screen.wait_for("You chose: blue")
        screen.send("!ask Pick a shape | circle | square\r")
        screen.wait_for("2. square")
        screen.send("\t")  # the card's options as a list
        screen.wait_for("        2. square")
        screen.send("\x1b[B")  # Down: the first option
        screen.wait_for("local> 1")
        screen.send("\x1b[B")  # Down: the second
        screen.wait_for("local> 2")
        screen.send("\r")
        screen.wait_for("You chose: square")


def test_the_working_indicator_shows_while_the_agent_runs(
    tty_env: dict[str, str], tmp_path: Path, chat_screen: list[PtyScreen]
) -> None:
    with host_process(tty_env, tmp_path):
        screen = open_chat(tty_env, chat_screen)
        screen.send("!sleep 3 slow one\r")
        screen.wait_for("is working…")
        screen.wait_for(f"{MOCK}!sleep 3 slow one")


def test_the_host_stopped_mid_chat_gives_one_line_and_exit_code_3(
    tty_env: dict[str, str], tmp_path: Path, chat_screen: list[PtyScreen]
) -> None:
    with host_process(tty_env, tmp_path) as proc:
        screen = open_chat(tty_env, chat_screen, "--reconnect-for", "1")
        screen.send("hello\r")
        screen.wait_for(f"{MOCK}hello")
        screen.send("typed but not sent")
        stop(proc)
        code = screen.wait_exit()
    assert code == 3
    assert "Traceback" not in screen.raw and "Error" not in screen.raw
    gone = [line for line in screen.lines() if "host went away" in line]
    assert len(gone) == 1 and gone[0].startswith("nanoclaw chat: the host went away")


def test_the_chat_reconnects_when_the_host_returns(
    tty_env: dict[str, str], tmp_path: Path, chat_screen: list[PtyScreen]
) -> None:
    with host_process(tty_env, tmp_path) as proc:
        screen = open_chat(tty_env, chat_screen, "--reconnect-for", "60")
        screen.send("before\r")
        screen.wait_for(f"{MOCK}before")
        stop(proc)
    with host_process(tty_env, tmp_path):
        screen.wait_for("[reconnected]")
        screen.send("after\r")
        screen.wait_for(f"{MOCK}after")


def test_a_reply_sent_while_no_client_was_connected_appears_after_a_host_restart(
    tty_env: dict[str, str], tmp_path: Path, chat_screen: list[PtyScreen]
) -> None:
    with host_process(tty_env, tmp_path) as proc:
        say_and_leave(tty_env, "!sleep 1 remember the milk")
        wait_state(lambda: pending_replies(tty_env) == 1)  # answered while nobody listened
        stop(proc)
    with host_process(tty_env, tmp_path):
        screen = open_chat(tty_env, chat_screen)
        screen.wait_for(f"{MOCK}!sleep 1 remember the milk")
        wait_state(lambda: pending_replies(tty_env) == 0)  # the client acknowledged it


def test_130_replies_while_nobody_listens_all_arrive(
    tty_env: dict[str, str], tmp_path: Path, chat_screen: list[PtyScreen]
) -> None:
    count = 130
    with host_process(tty_env, tmp_path):
        for n in range(count):  # one turn each: the next message waits for the reply
            say_and_leave(tty_env, f"note {n:03d}")
            wait_state(lambda n=n: pending_replies(tty_env) == n + 1)
        screen = open_chat(tty_env, chat_screen)
        screen.wait_for(f"{MOCK}note {count - 1:03d}")
        wait_state(lambda: pending_replies(tty_env) == 0)
        shown = [line for line in screen.lines() if MOCK in line]
        assert [line.split(MOCK)[1] for line in shown] == [f"note {n:03d}" for n in range(count)]


def test_the_non_tty_path_does_not_import_prompt_toolkit(env: dict[str, str]) -> None:
    code = (
        "import sys; from nanoclaw.cli import app; "
        "sys.argv=['nanoclaw','chat','-m','x']\n"
        "try: app.main()\nexcept SystemExit: pass\n"
        "assert 'prompt_toolkit' not in sys.modules, 'imported'\n"
    )
    result = subprocess.run(
        [NANOCLAW[0], "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "host is not running" in result.stderr.replace("\n", " ")
