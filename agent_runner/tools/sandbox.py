"""Bash and the text editor, via the model's built-in tool types, run inside the runner's sandbox.

Each bash command runs in its own process group with a timeout, its output capped; the
working directory carries over between commands. The running tool and its timeout are
declared in ``runner_state`` so the host's stuck detection can widen its threshold. The
text editor refuses to write under read-only roots (the shared ``global`` memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any, assert_never

from agent_runner.tools.base import (
    MAX_TOOL_OUTPUT_CHARS,
    Tool,
    ToolEnv,
    ToolError,
    ToolOutput,
    cap_text,
)
from agent_runner.tools.inputs import BashInput, EditorInput
from agent_runner.tools.schema import parse_input

BASH_TOOL_TYPE = "bash_20250124"
EDITOR_TOOL_TYPE = "text_editor_20250728"
EDITOR_TOOL_NAME = "str_replace_based_edit_tool"
_PWD_MARK = "__NANOCLAW_PWD__"
READ_CHUNK_BYTES = 65_536
MAX_VIEW_FILE_BYTES = 2 * 1024 * 1024
MAX_DIR_ENTRIES = 500


class BashTool(Tool):
    name = "bash"

    def __init__(self) -> None:
        self._cwd: Path | None = None

    def definition(self) -> dict[str, Any]:
        return {"type": BASH_TOOL_TYPE, "name": self.name}

    async def run(self, tool_input: dict[str, Any], env: ToolEnv) -> ToolOutput:
        args = parse_input(BashInput, tool_input, tool=self.name)
        if args.restart:
            self._cwd = None
            return ToolOutput("The shell was restarted.")
        if args.command is None:
            raise ToolError("'command' is required (or restart: true)")
        command = args.command
        cwd = self._cwd if self._cwd and self._cwd.is_dir() else env.group_dir
        timeout_s = env.config.tool_timeout_s
        script = (
            f"{command}\n__nc_status=$?\nprintf '\\n{_PWD_MARK}%s' \"$PWD\"\nexit $__nc_status\n"
        )
        env.ctx.declare_tool("bash", timeout_ms=int(timeout_s * 1000))
        try:
            output, code, timed_out = await _run_capped(
                ["bash", "-c", script], cwd=cwd, timeout_s=timeout_s, touch=env.ctx.touch
            )
        finally:
            env.ctx.declare_tool(None)
        text = output
        if _PWD_MARK in text:
            text, _, pwd = text.rpartition(_PWD_MARK)
            text = text.rstrip("\n")
            if pwd:
                self._cwd = Path(pwd)  # checked with is_dir() before the next use
        text = cap_text(text)
        if timed_out:
            return ToolOutput(
                f"{text}\n[command timed out after {timeout_s:g} s and was killed]", True
            )
        if code != 0:
            return ToolOutput(f"{text}\n[exit code {code}]".lstrip("\n"), is_error=True)
        return ToolOutput(text or "(no output)")


async def _run_capped(
    argv: list[str], *, cwd: Path, timeout_s: float, touch: Any
) -> tuple[str, int, bool]:
    """Run, keep the head and tail of the output (stdout+stderr), kill the group on timeout."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(cwd),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    head = bytearray()
    tail = bytearray()
    total = 0
    half = MAX_TOOL_OUTPUT_CHARS  # bytes kept at each end before decoding and the final cap

    async def pump() -> None:
        nonlocal total
        assert process.stdout is not None
        while True:
            chunk = await process.stdout.read(READ_CHUNK_BYTES)
            if not chunk:
                return
            touch()
            total += len(chunk)
            room = half - len(head)
            if room > 0:
                head.extend(chunk[:room])
                chunk = chunk[room:]
            if chunk:
                tail.extend(chunk)
                del tail[: max(0, len(tail) - half)]

    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(pump(), process.wait()), timeout=timeout_s)
    except TimeoutError:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
    omitted = total - len(head) - len(tail)
    middle = f"\n[… {omitted} bytes omitted …]\n".encode() if omitted > 0 else b""
    text = (bytes(head) + middle + bytes(tail)).decode(errors="replace")
    return text, process.returncode or 0, timed_out


class TextEditorTool(Tool):
    name = EDITOR_TOOL_NAME

    def definition(self) -> dict[str, Any]:
        return {"type": EDITOR_TOOL_TYPE, "name": self.name}

    async def run(self, tool_input: dict[str, Any], env: ToolEnv) -> ToolOutput:
        args = parse_input(EditorInput, tool_input, tool=self.name)
        path = _resolve(args.path, env.group_dir)
        env.ctx.declare_tool(self.name, timeout_ms=int(env.config.tool_timeout_s * 1000))
        try:
            return await asyncio.to_thread(self._run, args, path, env)
        finally:
            env.ctx.declare_tool(None)

    def _run(self, args: EditorInput, path: Path, env: ToolEnv) -> ToolOutput:
        command = args.command
        if command == "view":
            return ToolOutput(cap_text(_view(path, args.view_range)))
        _check_writable(path, [env.global_dir])
        if command == "create":
            text = args.file_text
            if text is None:
                raise ToolError("'file_text' is required for create")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return ToolOutput(f"Created {path}.")
        if command == "str_replace":
            old = args.old_str
            new = args.new_str or ""
            if not old:
                raise ToolError("'old_str' is required for str_replace")
            text = _read_text(path)
            count = text.count(old)
            if count != 1:
                raise ToolError(
                    f"'old_str' must occur exactly once in {path}; it occurs {count} times"
                )
            path.write_text(text.replace(old, new, 1), encoding="utf-8")
            return ToolOutput(f"Edited {path}.")
        if command == "insert":
            line = args.insert_line
            inserted = args.insert_text if args.insert_text is not None else args.new_str
            if line is None or inserted is None:
                raise ToolError("'insert_line' (int) and 'new_str' are required for insert")
            lines = _read_text(path).splitlines(keepends=True)
            if not 0 <= line <= len(lines):
                raise ToolError(f"'insert_line' must be between 0 and {len(lines)}")
            lines.insert(line, inserted if inserted.endswith("\n") else inserted + "\n")
            path.write_text("".join(lines), encoding="utf-8")
            return ToolOutput(f"Inserted text after line {line} of {path}.")
        assert_never(command)


def _resolve(raw: str, base: Path) -> Path:
    path = Path(raw)
    return path if path.is_absolute() else base / path


def _check_writable(path: Path, read_only: list[Path]) -> None:
    real = path.resolve()
    for root in read_only:
        real_root = root.resolve()
        if real == real_root or real_root in real.parents:
            raise ToolError(f"{path} is read-only (shared memory); edit your own group's files")


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise ToolError(f"{path} is not a file")
    if path.stat().st_size > MAX_VIEW_FILE_BYTES:
        raise ToolError(f"{path} is larger than {MAX_VIEW_FILE_BYTES} bytes; use bash")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(f"{path} is not UTF-8 text") from exc


def _view(path: Path, view_range: list[int] | None) -> str:
    if path.is_dir():
        entries: list[str] = []
        for child in sorted(path.rglob("*")):
            rel = child.relative_to(path)
            if len(rel.parts) > 2 or any(p.startswith(".") for p in rel.parts):
                continue
            entries.append(f"{rel}{'/' if child.is_dir() else ''}")
            if len(entries) >= MAX_DIR_ENTRIES:
                entries.append("…")
                break
        return "\n".join(entries) or "(empty directory)"
    lines = _read_text(path).splitlines()
    start, end = 1, len(lines)
    if view_range is not None:
        start = max(1, view_range[0])
        end = len(lines) if view_range[1] == -1 else min(len(lines), view_range[1])
    return "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(start, end + 1)) or "(empty file)"


def web_server_tools() -> list[dict[str, Any]]:
    """The provider's server-side web tools (no network needed in the sandbox)."""
    return [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 5},
    ]
