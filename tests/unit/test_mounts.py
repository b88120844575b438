"""Extra mounts: allowlist outside the project, blocked names, realpath containment, modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanoclaw.errors import ConfigError, UnsafePathError, ValidationError
from nanoclaw.runtime.mounts import (
    Allowlist,
    MountRequest,
    load_allowlist,
    parse_requests,
    resolve_extra_mounts,
    validate_mount,
)


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / ".env").write_text("ANTHROPIC_API_KEY=x\n")
    home = tmp_path / "home"
    shared = home / "shared"
    (shared / "site").mkdir(parents=True)
    (home / "writable" / "notes").mkdir(parents=True)
    (home / ".ssh").mkdir()
    (shared / "credentials-store").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (shared / "escape").symlink_to(outside)
    (shared / "to-ssh").symlink_to(home / ".ssh")
    allowlist = tmp_path / "config" / "mount-allowlist.json"
    allowlist.parent.mkdir()
    allowlist.write_text(
        json.dumps(
            {
                "allowedRoots": [
                    {"path": str(shared), "allowReadWrite": False},
                    {"path": str(home / "writable"), "allowReadWrite": True},
                    {"path": str(home)},  # read-only root holding .ssh
                ],
                "blockedPatterns": ["private-stuff"],
            }
        )
    )
    return {
        "project": project,
        "home": home,
        "shared": shared,
        "outside": outside,
        "allowlist": allowlist,
        "tmp": tmp_path,
    }


def allow(world: dict[str, Path]) -> Allowlist:
    return load_allowlist(world["allowlist"], project_root=world["project"])


def test_no_allowlist_file_rejects_every_mount(world: dict[str, Path]) -> None:
    empty = load_allowlist(world["tmp"] / "missing.json", project_root=world["project"])
    assert empty.roots == () and empty.source is None
    with pytest.raises(ValidationError, match="refused"):
        validate_mount(MountRequest(str(world["shared"] / "site")), empty)


def test_an_allowlist_inside_the_project_is_refused(world: dict[str, Path]) -> None:
    inside = world["project"] / "mount-allowlist.json"
    inside.write_text(world["allowlist"].read_text())
    with pytest.raises(ConfigError, match="inside the project"):
        load_allowlist(inside, project_root=world["project"])


def test_an_allowed_directory_is_mounted_read_only_under_extra(world: dict[str, Path]) -> None:
    mount = validate_mount(MountRequest(str(world["shared"] / "site")), allow(world))
    assert mount.source == (world["shared"] / "site").resolve()
    assert mount.target == "/workspace/extra/site"
    assert mount.read_only is True


def test_read_write_needs_both_the_request_and_the_root(world: dict[str, Path]) -> None:
    rw_root = validate_mount(
        MountRequest(str(world["home"] / "writable" / "notes"), "notes", read_only=False),
        allow(world),
    )
    assert rw_root.read_only is False
    ro_root = validate_mount(
        MountRequest(str(world["shared"] / "site"), "site", read_only=False), allow(world)
    )
    assert ro_root.read_only is True


@pytest.mark.parametrize(
    "container_path",
    ["../escape", "a/../../b", "/etc", "/workspace/agent", "c:evil", "..", "a\\b", "ok/\x00"],
)
def test_container_paths_must_be_plain_and_relative(
    world: dict[str, Path], container_path: str
) -> None:
    with pytest.raises(UnsafePathError):
        validate_mount(MountRequest(str(world["shared"] / "site"), container_path), allow(world))


def test_dot_dot_in_the_host_path_cannot_leave_a_root(world: dict[str, Path]) -> None:
    sneaky = f"{world['shared']}/site/../../../outside"
    with pytest.raises(UnsafePathError, match="not under an allowed root"):
        validate_mount(MountRequest(sneaky, "x"), allow(world))


def test_a_symlink_out_of_an_allowed_root_is_rejected(world: dict[str, Path]) -> None:
    with pytest.raises(UnsafePathError, match="not under an allowed root"):
        validate_mount(MountRequest(str(world["shared"] / "escape"), "x"), allow(world))


def test_a_symlink_to_a_blocked_folder_is_rejected(world: dict[str, Path]) -> None:
    with pytest.raises(UnsafePathError, match=r"\.ssh"):
        validate_mount(MountRequest(str(world["shared"] / "to-ssh"), "x"), allow(world))


@pytest.mark.parametrize("name", [".ssh", "credentials-store"])
def test_blocked_names_are_rejected_even_under_an_allowed_root(
    world: dict[str, Path], name: str
) -> None:
    parent = world["home"] if name == ".ssh" else world["shared"]
    with pytest.raises(UnsafePathError, match="blocked pattern"):
        validate_mount(MountRequest(str(parent / name), "x"), allow(world))


def test_custom_blocked_patterns_add_to_the_defaults(world: dict[str, Path]) -> None:
    (world["shared"] / "private-stuff").mkdir()
    with pytest.raises(UnsafePathError, match="private-stuff"):
        validate_mount(MountRequest(str(world["shared"] / "private-stuff")), allow(world))
    assert ".ssh" in allow(world).blocked_patterns


def test_relative_missing_and_file_host_paths_are_rejected(world: dict[str, Path]) -> None:
    (world["shared"] / "file.txt").write_text("x")
    for bad in ("shared/site", str(world["shared"] / "nope"), str(world["shared"] / "file.txt")):
        with pytest.raises(UnsafePathError):
            validate_mount(MountRequest(bad, "x"), allow(world))


def test_a_mount_may_never_expose_the_project_or_the_allowlist(world: dict[str, Path]) -> None:
    data = json.loads(world["allowlist"].read_text())
    data["allowedRoots"].append({"path": str(world["tmp"])})
    world["allowlist"].write_text(json.dumps(data))
    protected = [world["project"]]
    with pytest.raises(UnsafePathError, match="expose"):
        validate_mount(MountRequest(str(world["project"]), "p"), allow(world), protected=protected)
    with pytest.raises(UnsafePathError, match="expose"):
        validate_mount(
            MountRequest(str(world["project"] / "data"), "d"), allow(world), protected=protected
        )
    with pytest.raises(UnsafePathError, match="expose"):
        validate_mount(MountRequest(str(world["tmp"] / "config"), "c"), allow(world))


def test_resolve_keeps_good_mounts_and_reports_the_rest(world: dict[str, Path]) -> None:
    raw = json.dumps(
        [
            {"hostPath": str(world["shared"] / "site"), "containerPath": "site"},
            {"hostPath": str(world["shared"] / "escape"), "containerPath": "escape"},
            {"hostPath": str(world["shared"] / "site"), "containerPath": "site"},  # same target
        ]
    )
    accepted, rejected = resolve_extra_mounts(parse_requests(raw), allow(world))
    assert [m.target for m in accepted] == ["/workspace/extra/site"]
    assert len(rejected) == 2
    assert "allowed root" in rejected[0].reason and "two mounts" in rejected[1].reason


def test_requests_must_be_a_json_list_with_host_paths() -> None:
    assert parse_requests(None) == [] and parse_requests("[]") == []
    with pytest.raises(ValidationError):
        parse_requests("{}")
    with pytest.raises(ValidationError):
        parse_requests('[{"containerPath": "x"}]')
