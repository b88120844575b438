"""Settings precedence (flags > NANOCLAW_* > ANTHROPIC_* > .env) and where doctor says each came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanoclaw.settings import effective_settings_hash, load_settings
from nanoclaw.setup.envfile import store_env
from nanoclaw.setup.sources import Origin, source_of
from tests.conftest import REPO_ROOT


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / ".env"
    monkeypatch.setenv("NANOCLAW_ENV_FILE", str(path))
    monkeypatch.setenv("NANOCLAW_DATA_DIR", str(tmp_path / "data"))
    return path


def test_each_layer_overrides_the_next(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store_env(env_file, {"NANOCLAW_ANTHROPIC_BASE_URL": "http://from-dotenv"})
    s = load_settings(root=REPO_ROOT)
    assert s.anthropic_base_url == "http://from-dotenv"
    assert source_of("anthropic_base_url", s, env_file=env_file).origin is Origin.ENV_FILE

    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://from-standard")
    s = load_settings(root=REPO_ROOT)
    assert s.anthropic_base_url == "http://from-standard"
    src = source_of("anthropic_base_url", s, env_file=env_file)
    assert (src.origin, src.name) == (Origin.ENVIRONMENT, "ANTHROPIC_BASE_URL")

    monkeypatch.setenv("NANOCLAW_ANTHROPIC_BASE_URL", "http://from-nanoclaw")
    s = load_settings(root=REPO_ROOT)
    assert s.anthropic_base_url == "http://from-nanoclaw"
    src = source_of("anthropic_base_url", s, env_file=env_file)
    assert src.name == "NANOCLAW_ANTHROPIC_BASE_URL"

    flagged = source_of(
        "anthropic_base_url", s, env_file=env_file, flags={"anthropic_base_url": "--base-url"}
    )
    assert flagged.origin is Origin.FLAG and "--base-url" in flagged.describe()


def test_the_standard_token_variable_is_a_credential(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "tok-123456789012345")
    s = load_settings(root=REPO_ROOT)
    assert s.has_model_credential and s.effective_provider == "anthropic"
    src = source_of("anthropic_auth_token", s, env_file=env_file)
    assert src.shown == "set" and "tok-" not in src.describe()  # never the secret itself


def test_dotenv_is_private_and_the_hash_follows_every_value(env_file: Path) -> None:
    store_env(env_file, {"NANOCLAW_ANTHROPIC_API_KEY": "sk-one", "NANOCLAW_TIMEZONE": "UTC"})
    assert env_file.stat().st_mode & 0o777 == 0o600
    first = effective_settings_hash(load_settings(root=REPO_ROOT))
    store_env(env_file, {"NANOCLAW_ANTHROPIC_API_KEY": "sk-two"})
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert env_file.read_text().count("NANOCLAW_ANTHROPIC_API_KEY") == 1
    second = effective_settings_hash(load_settings(root=REPO_ROOT))
    assert first != second and "sk-two" not in second
    assert effective_settings_hash(load_settings(root=REPO_ROOT)) == second
