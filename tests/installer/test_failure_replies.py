"""A reply the host marks as a failure is not an answer: ``chat -m`` and ``doctor`` say so."""

from __future__ import annotations

import json

import pytest

from nanoclaw.setup.envfile import store_env
from tests.installer.conftest import Install
from tests.installer.fake_endpoint import fake_endpoint

pytestmark = pytest.mark.timeout(300)


def test_a_rejected_credential_makes_chat_exit_5_and_doctor_name_it(install: Install) -> None:
    with fake_endpoint(accept_tokens={"sk-the-right-one-123456"}) as fake:
        store_env(
            install.env_file,
            {
                "NANOCLAW_ANTHROPIC_API_KEY": "sk-a-wrong-one-1234567",
                "NANOCLAW_ANTHROPIC_BASE_URL": fake.base_url,
            },
        )
        assert install.nanoclaw("init").returncode == 0
        started = install.nanoclaw("start")
        assert started.returncode == 0, started.stderr
        done = install.nanoclaw("chat", "-m", "hello", "--timeout", "90")
        assert done.returncode == 5, done.stdout + done.stderr
        # The failure notice is printed as the reply; the exit code says it is one.
        assert "rejected the credential" in done.stdout
        as_json = install.nanoclaw("chat", "-m", "again", "--json", "--timeout", "90")
        frames = [json.loads(line) for line in as_json.stdout.splitlines() if line.strip()]
        assert as_json.returncode == 5 and frames and frames[0]["failure"] == "agent_error"
        doctor = install.nanoclaw("doctor", "--json")
        checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
        assert doctor.returncode == 1
        assert checks["model"]["ok"] is False and "HTTP 401" in checks["model"]["detail"]
        sources = {r["setting"]: r for r in json.loads(doctor.stdout)["settings"]}
        assert sources["anthropic_api_key"]["value"] == "set"
        assert sources["anthropic_api_key"]["source"] == ".env"
        assert "sk-a-wrong" not in doctor.stdout
