"""Pruning old agent images on a real Docker daemon: only images no install runs on are removed."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import docker.errors
import pytest

from nanoclaw.runtime.image import IMAGE_REPOSITORY, INSTALL_REPOSITORY, ImageBuilder
from nanoclaw.settings import Settings
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.docker
log = logging.getLogger("tests.e2e")
OLD = {name: f"{IMAGE_REPOSITORY}:{name}" for name in ("0ld-alias", "0ld-free", "0ld-in-use")}
OLD["0ld-claimed"] = f"{IMAGE_REPOSITORY}:0ld-claimed"
OTHER_INSTALL = f"{INSTALL_REPOSITORY}:test-other-install"


def tags(client: Any) -> set[str]:
    return {t for image in client.images.list(name=IMAGE_REPOSITORY) for t in image.tags}


def test_prune_removes_only_images_no_install_runs_on(docker_client: Any, agent_image: str) -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    builder = ImageBuilder(
        client=docker_client,
        wheelhouse=REPO_ROOT / ".wheelhouse",
        base_image=defaults.base_image,
        debian_mirror=defaults.debian_mirror,
        progress=lambda line: log.info("image: %s", line),
        install_id="test-this-install",
    )
    docker_client.images.get(agent_image).tag(IMAGE_REPOSITORY, "0ld-alias")  # same image id
    made = docker_client.containers.create(agent_image, labels={"nanoclaw.test": "prune"})
    users: list[Any] = []
    try:
        made.commit(repository=IMAGE_REPOSITORY, tag="0ld-free")  # distinct images from here on
        made.commit(repository=IMAGE_REPOSITORY, tag="0ld-in-use")
        claimed = made.commit(repository=IMAGE_REPOSITORY, tag="0ld-claimed")
        claimed.tag(INSTALL_REPOSITORY, OTHER_INSTALL.split(":")[1])  # another checkout runs it
        users.append(docker_client.containers.create(OLD["0ld-in-use"]))
        builder.claim(agent_image)
        result = builder.prune(keep=agent_image)
        # (older images of earlier checkouts on this daemon go too: that is the point)
        assert OLD["0ld-free"] in result.removed
        assert OLD["0ld-in-use"] in result.in_use
        left = tags(docker_client)
        assert {agent_image, OLD["0ld-alias"], OLD["0ld-in-use"], OLD["0ld-claimed"]} <= left
        assert OLD["0ld-free"] not in left
        claim = docker_client.images.get(f"{INSTALL_REPOSITORY}:test-this-install")
        assert claim.id == docker_client.images.get(agent_image).id
    finally:
        for container in [*users, made]:
            container.remove(force=True)
        for tag in [*OLD.values(), OTHER_INSTALL, f"{INSTALL_REPOSITORY}:test-this-install"]:
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(tag)
