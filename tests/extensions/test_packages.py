"""install_packages: only plain names reach pip and apt; stale layers are recognised."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nanoclaw.admin.extensions import Extensions
from nanoclaw.cli.app import app
from nanoclaw.db.central import CentralDB
from nanoclaw.db.repository import Repository
from nanoclaw.errors import ValidationError
from nanoclaw.runtime.packages import PackageRequest, layer_tag, stale_layer, validate_request
from nanoclaw.settings import Settings


@pytest.mark.parametrize(
    ("pip", "apt"),
    [
        (["--index-url=http://evil"], []),
        (["../wheel.whl"], []),
        (["https://e.com/x.whl"], []),
        (["six; rm -rf /"], []),
        ([], ["jq -o APT::Foo"]),
        ([], ["Upper"]),
        ([f"p{i}" for i in range(21)], []),
        ([], []),
    ],
)
def test_anything_but_plain_names_is_refused(pip: list[str], apt: list[str]) -> None:
    with pytest.raises(ValidationError):
        validate_request(pip, apt)


def test_plain_and_pinned_names_pass_deduplicated() -> None:
    request = validate_request(["six", "requests[socks]==2.32.3", "six"], ["jq", "curl=7.88.1-10"])
    assert request == PackageRequest(
        pip=("six", "requests[socks]==2.32.3"), apt=("jq", "curl=7.88.1-10")
    )


def test_a_layer_names_its_base_and_is_stale_once_the_agent_image_changes() -> None:
    request = PackageRequest(pip=("six",))
    tag = layer_tag("nanoclaw-agent:abcdef123456", request)
    assert tag.startswith("nanoclaw-agent-layer:abcdef123456-")
    assert tag == layer_tag("nanoclaw-agent:abcdef123456", PackageRequest(pip=("six",)))
    assert not stale_layer(tag, "nanoclaw-agent:abcdef123456")
    assert stale_layer(tag, "nanoclaw-agent:999999999999")
    assert not stale_layer(None, "nanoclaw-agent:999999999999")
    assert not stale_layer("my-own-image:1", "nanoclaw-agent:999999999999")


def test_packages_list_shows_the_set_the_image_and_the_last_outcome(
    settings: Settings, cli: CliRunner
) -> None:
    runner = cli
    assert runner.invoke(app, ["agents", "create", "Andy"]).exit_code == 0
    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    try:
        repo = Repository(db)
        agent = repo.agent_group("Andy")
        Extensions(repo=repo, groups_path=settings.groups_path).record_packages(
            agent.id,
            PackageRequest(pip=("six",)),
            image="nanoclaw-agent-layer:x-y",
            ok=True,
            message="Installed six",
        )
    finally:
        db.dispose()
    shown = json.loads(runner.invoke(app, ["agents", "packages", "list", "Andy", "--json"]).output)
    assert shown["pip"] == ["six"] and shown["apt"] == []
    assert shown["image"] == "nanoclaw-agent-layer:x-y"
    assert shown["status"]["ok"] is True and shown["status"]["message"] == "Installed six"
