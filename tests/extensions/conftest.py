"""The agent fixtures (a host with the fake model API) for the extension tests."""

from tests.agent.conftest import agent_host  # noqa: F401
