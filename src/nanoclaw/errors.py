"""The one rooted exception tree of NanoClaw.

NanoclawError
├── ConfigError                 bad settings or a missing prerequisite
├── ValidationError(field)      bad input from a user, an adapter or an agent
│   ├── PayloadError(fields)    a runner's action payload its model refused
│   └── UnsafePathError(path)   a path that would leave its confinement
│       └── SandboxFileError(problem)  a sandbox-writable name that is not a plain file
├── NotFoundError(kind, key)    an entity that does not exist
├── StorageError(path)          a central or session DB that cannot be used
│   └── SchemaVersionError(expected, found)
├── RuntimeUnavailableError(runtime)   the sandbox runtime cannot start runners
│   └── ImageMissingError(image)
├── RunnerError(session_id, exit_code)
├── DeliveryError(retryable)    a message that could not be handed to a channel
│   ├── UnauthorizedDestinationError
│   └── DeliveryDeferredError(retry_after_s)   a platform rate limit: try again later, no attempt used
├── ChannelError(channel)       an adapter that cannot connect or send
└── PermissionDeniedError(user_id, action)
"""

from __future__ import annotations

from enum import StrEnum


class NanoclawError(Exception):
    """Root of every error NanoClaw raises on purpose."""


class ConfigError(NanoclawError):
    """Settings are invalid or a prerequisite is missing."""


class ValidationError(NanoclawError):
    """Input was rejected; ``field`` names what was wrong."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PayloadError(ValidationError):
    """An action payload a runner wrote that its model refused; ``fields`` names each bad one."""

    def __init__(self, message: str, *, fields: tuple[str, ...]) -> None:
        super().__init__(message, field=fields[0] if fields else None)
        self.fields = fields


class UnsafePathError(ValidationError):
    """A path would escape its confinement (traversal, symlink, separator, NUL)."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message, field="path")
        self.path = path


class SandboxFileProblem(StrEnum):
    """Why a name under a sandbox-writable folder was refused (see ``nanoclaw.contract.confined``)."""

    SYMLINK = "symbolic link"
    FIFO = "FIFO"
    DEVICE = "device"
    SOCKET = "socket"
    FOLDER = "folder"
    NOT_A_FOLDER = "not a folder"
    TOO_LARGE = "too large"
    ESCAPES = "leaves its folder"
    UNSAFE_NAME = "unsafe name"
    TIMEOUT = "open timed out"
    SWAPPED = "changed while it was opened"


class SandboxFileError(UnsafePathError):
    """A name a sandbox can write was not a regular file of bounded size, reached without links."""

    def __init__(self, message: str, *, path: str, problem: SandboxFileProblem) -> None:
        super().__init__(message, path=path)
        self.problem = problem


class NotFoundError(NanoclawError):
    """An entity does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} not found: {key}")
        self.kind = kind
        self.key = key


class StorageError(NanoclawError):
    """A database cannot be opened, read or written."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class SchemaVersionError(StorageError):
    """A database's schema revision is not the one this code expects."""

    def __init__(self, *, path: str, expected: str, found: str | None) -> None:
        super().__init__(f"{path}: schema revision {found!r}, expected {expected!r}", path=path)
        self.expected = expected
        self.found = found


class RuntimeUnavailableError(NanoclawError):
    """The sandbox runtime cannot start runners right now."""

    def __init__(self, message: str, *, runtime: str) -> None:
        super().__init__(message)
        self.runtime = runtime


class ImageMissingError(RuntimeUnavailableError):
    """The agent image is not built; never pulled silently."""

    def __init__(self, *, image: str, runtime: str = "docker") -> None:
        super().__init__(
            f"agent image {image!r} is not built; run `nanoclaw image build`", runtime=runtime
        )
        self.image = image


class RunnerError(NanoclawError):
    """A runner failed to start or exited badly."""

    def __init__(self, message: str, *, session_id: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.exit_code = exit_code


class DeliveryError(NanoclawError):
    """A message could not be handed to its channel."""

    def __init__(
        self, message: str, *, retryable: bool = True, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s  # the platform's own wait (429 retry_after), if any


class UnauthorizedDestinationError(DeliveryError):
    """The agent group may not send to that destination."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class DeliveryDeferredError(DeliveryError):
    """The platform asked to wait (a rate limit): retry after ``retry_after_s``.

    A wait is not a failed attempt: the delivery loop re-schedules the row without counting it.
    """

    retry_after_s: float

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message, retryable=True, retry_after_s=retry_after_s)


class ChannelError(NanoclawError):
    """A channel adapter cannot connect or send."""

    def __init__(self, message: str, *, channel: str) -> None:
        super().__init__(message)
        self.channel = channel


class PermissionDeniedError(NanoclawError):
    """The user's role does not allow the action."""

    def __init__(self, message: str, *, user_id: str | None, action: str) -> None:
        super().__init__(message)
        self.user_id = user_id
        self.action = action
