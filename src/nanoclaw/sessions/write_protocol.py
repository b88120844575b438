"""Frames between the host and its session-DB write worker: length-prefixed pickles, errors rebuilt.

Stdlib only, and no asyncio (the worker's memory): the host's async reader is in
``write_client``. Both ends are the host's own processes on a private socket pair (never a socket a sandbox or
another user can reach), so pickle is a trusted encoding here. An exception raised in the
worker is rebuilt in the host as the same class with the same attributes (``sqlite_errorcode``
of a ``sqlite3.Error``, ``problem`` of a ``SandboxFileError``), so the host's handling of a full
disk, a locked or a damaged DB does not depend on which process wrote.
"""

from __future__ import annotations

import importlib
import pickle
import struct
import traceback
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, BinaryIO

from nanoclaw.errors import NanoclawError

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 256 * 1024 * 1024  # an inbound message is bounded far below this
MAX_CHAIN_DEPTH = 8  # causes carried per error (a chain is rarely longer than two)


class WriteOp(StrEnum):
    """The writes the worker runs (each a function of :mod:`nanoclaw.sessions.inbound_rows`)."""

    INSERT_MESSAGES = "insert_messages"
    RECORD_DELIVERY = "record_delivery"


@dataclass(frozen=True)
class WriteCall:
    call_id: int
    op: WriteOp
    session_id: str
    inbound_db: str  # the session's inbound.db path
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    # Wait up to ``LINGER_S`` for the session's next call and share its commit (a delivery
    # record after the last reply of a pass: the user's next message often follows).
    linger: bool = False


@dataclass(frozen=True)
class RemoteError:
    """An exception raised in the worker, as data: rebuilt by :meth:`rebuild`."""

    module: str
    qualname: str
    args: tuple[Any, ...]
    attributes: dict[str, Any]
    text: str
    formatted: str
    cause: RemoteError | None = None  # what it was raised from (or during), also rebuilt

    @classmethod
    def of(cls, exc: BaseException, *, depth: int = 0) -> RemoteError:
        attributes = dict(getattr(exc, "__dict__", {}))
        attributes.pop("__notes__", None)
        try:
            pickle.dumps((exc.args, attributes))
        except Exception:  # an attribute that does not travel: only the text does
            args, attributes = (str(exc),), {}
        else:
            args = exc.args
        # The chain travels too: ``storage_errors.is_disk_full`` and the logs follow it.
        wrapped = None if exc.__suppress_context__ else exc.__context__
        wrapped = exc.__cause__ or wrapped
        return cls(
            module=type(exc).__module__,
            qualname=type(exc).__qualname__,
            args=args,
            attributes=attributes,
            text=str(exc),
            formatted="".join(traceback.format_exception(exc, chain=False)),
            cause=(
                cls.of(wrapped, depth=depth + 1)
                if wrapped is not None and depth < MAX_CHAIN_DEPTH
                else None
            ),
        )

    def rebuild(self) -> BaseException:
        """The same exception class and attributes, with the worker's traceback as a note and
        its cause rebuilt as ``__cause__``."""
        exc: BaseException
        try:
            found = importlib.import_module(self.module)
            for part in self.qualname.split("."):
                found = getattr(found, part)
            if not (isinstance(found, type) and issubclass(found, Exception)):
                raise TypeError(self.qualname)
            exc = found.__new__(found, *self.args)
            exc.args = self.args
            exc.__dict__.update(self.attributes)
        except Exception:
            exc = WriteWorkerError(f"{self.module}.{self.qualname}: {self.text}")
        exc.add_note(f"raised in the session-DB write worker:\n{self.formatted}")
        if self.cause is not None:
            exc.__cause__ = self.cause.rebuild()
        return exc


class WriteWorkerError(NanoclawError):
    """The worker raised something the host cannot rebuild as its own class."""


class WriteWorkerGoneError(NanoclawError):
    """The worker exited (or its socket closed) with this call in flight: whether the write
    committed is unknown, so the caller repeats it (both writes are idempotent)."""


def encode(message: object) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(body) > MAX_FRAME_BYTES:
        raise WriteWorkerError(f"a {len(body)}-byte frame is over {MAX_FRAME_BYTES} bytes")
    return HEADER.pack(len(body)) + body


def check_size(size: int) -> None:
    if size > MAX_FRAME_BYTES:
        raise WriteWorkerError(f"a {size}-byte frame is over {MAX_FRAME_BYTES} bytes")


def read_frame_blocking(stream: BinaryIO) -> Any:
    """The next message from a buffered stream (the worker's side); ``EOFError`` at its end."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError
    (size,) = HEADER.unpack(header)
    check_size(size)
    body = stream.read(size)
    if len(body) < size:
        raise EOFError
    return pickle.loads(body)
