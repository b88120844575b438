"""The docker run arguments and the bwrap command line, as pure functions of a RunSpec."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanoclaw.errors import RunnerError, ValidationError
from nanoclaw.runtime.base import Mount, RunSpec
from nanoclaw.runtime.bwrap import PythonLayout, build_bwrap_argv
from nanoclaw.runtime.docker import DockerLimits, build_run_kwargs

SECRET = "sk-ant-never-in-a-sandbox"


def make_spec(tmp_path: Path, **overrides: object) -> RunSpec:
    session = tmp_path / "sessions" / "andy" / "sess-1"
    for sub in ("inbound", "outbound", "inbox", "outbox", "config"):
        (session / sub).mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {
        "session_id": "sess-1",
        "agent_group_id": "ag-1",
        "agent_folder": "andy",
        "session_dir": session,
        "group_dir": tmp_path / "groups" / "andy",
        "global_dir": tmp_path / "groups" / "global",
        "install_id": "abc123",
        "timezone": "Europe/Paris",
    }
    values.update(overrides)
    return RunSpec(**values)  # type: ignore[arg-type]


def kwargs_for(spec: RunSpec, **kw: object) -> dict[str, object]:
    return build_run_kwargs(
        spec,
        image=str(kw.get("image", "nanoclaw-agent:test")),
        user=str(kw.get("user", "1000:1000")),
        limits=DockerLimits(memory="512m", cpus=1.5, pids=128),
    )


def mounts_of(kwargs: dict[str, object]) -> dict[str, tuple[str, bool]]:
    return {m["Target"]: (m["Source"], m["ReadOnly"]) for m in kwargs["mounts"]}  # type: ignore[attr-defined]


def test_docker_run_arguments_are_hardened(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    kw = kwargs_for(spec)
    assert kw["user"] == "1000:1000"
    assert kw["cap_drop"] == ["ALL"]
    assert kw["security_opt"] == ["no-new-privileges:true"]
    assert kw["read_only"] is True
    tmpfs = kw["tmpfs"]
    assert isinstance(tmpfs, dict) and set(tmpfs) == {"/tmp", "/home/agent"}
    assert kw["network_mode"] == "none"
    assert "network" not in kw and "extra_hosts" not in kw
    assert kw["mem_limit"] == "512m" and kw["memswap_limit"] == "512m"
    assert kw["nano_cpus"] == 1_500_000_000
    assert kw["pids_limit"] == 128
    assert kw["init"] is True and kw["detach"] is True
    assert kw["labels"] == {
        "nanoclaw.install": "abc123",
        "nanoclaw.session": "sess-1",
        "nanoclaw.agent_group": "ag-1",
    }
    assert kw["name"] == "nanoclaw-abc123-sess-1"
    assert kw["image"] == "nanoclaw-agent:test"


def test_docker_mounts_are_directories_with_the_right_modes(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, proxy_dir=tmp_path / "proxy")
    kw = kwargs_for(spec)
    assert all(m["Type"] == "bind" for m in kw["mounts"])  # type: ignore[attr-defined]
    mounts = mounts_of(kw)
    session = str(spec.session_dir)
    assert mounts == {
        "/session": (session, True),
        "/session/outbound": (f"{session}/outbound", False),
        "/session/outbox": (f"{session}/outbox", False),
        "/workspace/agent": (str(spec.group_dir), False),
        "/workspace/global": (str(spec.global_dir), True),
        "/run/nanoclaw": (str(tmp_path / "proxy"), True),
    }
    targets = [m["Target"] for m in kw["mounts"]]  # type: ignore[attr-defined]
    assert targets.index("/session") < targets.index("/session/outbound")
    assert not any(t.endswith(".db") for t in targets)


def test_extra_mounts_come_last_with_their_mode(tmp_path: Path) -> None:
    extra = Mount(source=tmp_path, target="/workspace/extra/site", read_only=True)
    kw = kwargs_for(make_spec(tmp_path, extra_mounts=(extra,)))
    assert mounts_of(kw)["/workspace/extra/site"] == (str(tmp_path), True)


def test_open_network_is_an_explicit_opt_in(tmp_path: Path) -> None:
    kw = kwargs_for(make_spec(tmp_path, network="open"))
    assert kw["network_mode"] == "bridge"
    assert kw["extra_hosts"] == {"host.docker.internal": "host-gateway"}


def test_environment_carries_no_secret_and_refuses_credential_names(tmp_path: Path) -> None:
    kw = kwargs_for(make_spec(tmp_path, env={"FOO": "bar"}))
    env = kw["environment"]
    assert env["TZ"] == "Europe/Paris" and env["FOO"] == "bar"  # type: ignore[index]
    assert SECRET not in repr(kw)
    for name in ("ANTHROPIC_API_KEY", "SLACK_BOT_TOKEN", "MY_SECRET", "DB_PASSWORD"):
        with pytest.raises(RunnerError, match="credentials never enter"):
            kwargs_for(make_spec(tmp_path, env={name: SECRET}))


def test_root_is_refused_as_the_container_user(tmp_path: Path) -> None:
    for user in ("0:0", "root", "0"):
        with pytest.raises(RunnerError, match="root"):
            kwargs_for(make_spec(tmp_path), user=user)


@pytest.mark.parametrize(
    ("install_id", "session_id"),
    [("abc", "../x"), ("abc", "a b"), ("abc", "-lead"), ("a/b", "sess"), ("abc", "")],
)
def test_names_are_validated(tmp_path: Path, install_id: str, session_id: str) -> None:
    with pytest.raises(ValidationError):
        kwargs_for(make_spec(tmp_path, install_id=install_id, session_id=session_id))


def bwrap_argv(spec: RunSpec) -> list[str]:
    return build_bwrap_argv(
        spec,
        bwrap="/usr/bin/bwrap",
        python=PythonLayout(executable="/opt/py/bin/python", prefixes=(Path("/opt/py"),)),
        app_dir=Path("/srv/app"),
        uid=1000,
        gid=1000,
    )


def pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def test_bwrap_isolates_and_drops_everything(tmp_path: Path) -> None:
    argv = bwrap_argv(make_spec(tmp_path))
    for flag in (
        "--unshare-net",
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert argv[argv.index("--uid") + 1] == "1000"
    assert argv[argv.index("/tmp") - 1 : argv.index("/tmp") + 1] == ["--tmpfs", "/tmp"]
    assert "/home/agent" in argv
    assert tuple(argv[argv.index("--remount-ro") + 1 : argv.index("--remount-ro") + 2]) == ("/",)
    assert argv[-3:] == ["/opt/py/bin/python", "-m", "agent_runner"]
    # Never the whole of /etc (shadow, secrets) or the host's home.
    binds = pairs(argv, "--ro-bind") + pairs(argv, "--bind") + pairs(argv, "--ro-bind-try")
    assert ("/etc", "/etc") not in binds
    assert not any(src in ("/", "/root", "/home") for src, _ in binds)


def test_bwrap_mounts_match_the_docker_plan(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, proxy_dir=tmp_path / "proxy")
    argv = bwrap_argv(spec)
    ro = dict((dst, src) for src, dst in pairs(argv, "--ro-bind"))
    rw = dict((dst, src) for src, dst in pairs(argv, "--bind"))
    session = str(spec.session_dir)
    assert ro["/session"] == session
    assert rw["/session/outbound"] == f"{session}/outbound"
    assert rw["/session/outbox"] == f"{session}/outbox"
    assert rw["/workspace/agent"] == str(spec.group_dir)
    assert ro["/workspace/global"] == str(spec.global_dir)
    assert ro["/run/nanoclaw"] == str(tmp_path / "proxy")
    assert ro["/app"] == "/srv/app"
    assert argv.index(session) < argv.index(f"{session}/outbound")


def test_bwrap_environment_is_built_from_scratch(tmp_path: Path) -> None:
    argv = bwrap_argv(make_spec(tmp_path, env={"FOO": "bar"}))
    env = {argv[i + 1]: argv[i + 2] for i, a in enumerate(argv) if a == "--setenv"}
    assert env["FOO"] == "bar" and env["PYTHONPATH"] == "/app" and env["HOME"] == "/home/agent"
    assert not any("KEY" in k or "TOKEN" in k for k in env)
    with pytest.raises(RunnerError):
        bwrap_argv(make_spec(tmp_path, env={"ANTHROPIC_API_KEY": SECRET}))


def test_an_interpreter_under_tmp_stays_visible_past_the_private_tmp(tmp_path: Path) -> None:
    """A checkout in /tmp (or a venv under a home folder) must not be hidden by the tmpfs."""
    venv = Path("/tmp/checkout/.venv")
    argv = build_bwrap_argv(
        make_spec(tmp_path),
        bwrap="/usr/bin/bwrap",
        python=PythonLayout(executable=f"{venv}/bin/python", prefixes=(venv,)),
        app_dir=Path("/srv/app"),
        uid=1000,
        gid=1000,
    )
    tmpfs_at = max(i for i, a in enumerate(argv) if a == "--tmpfs")
    bind_at = next(i for i, a in enumerate(argv) if a == "--ro-bind" and argv[i + 1] == str(venv))
    assert bind_at > tmpfs_at
