"""Linking WhatsApp (``nanoclaw channels add whatsapp``) and pairing the operator over it.

The phone and WhatsApp's servers are the recording fake: it emits neonize's QR event, then
``PairStatus`` and ``Connected`` as a phone that scanned the code (or typed the pairing code)
would make WhatsApp do. Linking against the real network is not tested.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from neonize.proto import Neonize_pb2 as npb
from typer.testing import CliRunner

from nanoclaw.channels.pairing import PAIRING_FILE, WELCOME_PROMPT, PairingCodes
from nanoclaw.channels.whatsapp import session_path
from nanoclaw.channels.whatsapp.link import LinkError, link, render_qr
from nanoclaw.cli.app import app
from nanoclaw.host import build_host
from nanoclaw.settings import Settings
from tests.conftest import REPO_ROOT
from tests.fakes.whatsapp import FakeWhatsApp, parse
from tests.helpers import make_agent

pytestmark = pytest.mark.timeout(60)

MOCK = "(mock model, no API key configured) heard: "
ME = "15550001111@s.whatsapp.net"
QR_CODE = str(parse("qr_codes", npb.QR).Codes[0])


@pytest.fixture
def env(tmp_path: Path, short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's environment: this test's data and .env (returned)."""
    for key in [k for k in os.environ if k.startswith("NANOCLAW_")]:
        monkeypatch.delenv(key)
    dotenv = tmp_path / ".env"
    for key, value in {
        "NANOCLAW_ROOT": str(REPO_ROOT),
        "NANOCLAW_ENV_FILE": str(dotenv),
        "NANOCLAW_DATA_DIR": str(tmp_path / "data"),
        "NANOCLAW_GROUPS_DIR": str(tmp_path / "groups"),
        "NANOCLAW_LOGS_DIR": str(tmp_path / "logs"),
        "NANOCLAW_CLI_SOCKET_PATH": str(short_dir / "cli.sock"),
        "NANOCLAW_RUNTIME": "process",
        "NANOCLAW_ALLOW_PROCESS_RUNTIME": "true",
        "NANOCLAW_TIMEZONE": "UTC",
        "COLUMNS": "200",
    }.items():
        monkeypatch.setenv(key, value)
    return dotenv


def use_fake(monkeypatch: pytest.MonkeyPatch, wa: FakeWhatsApp) -> None:
    monkeypatch.setattr("nanoclaw.channels.whatsapp.link.new_client", wa.factory)


def test_add_whatsapp_shows_the_qr_code_links_stores_and_issues_a_pairing_code(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wa = FakeWhatsApp(linked=False, accepts_by="qr")
    use_fake(monkeypatch, wa)
    result = CliRunner().invoke(app, ["channels", "add", "whatsapp", "--no-wait"])
    assert result.exit_code == 0, result.output
    assert "Link a device" in result.output
    assert render_qr(QR_CODE).strip() in result.output  # the code the QR event carried
    assert f"WhatsApp linked as {ME}." in result.output
    assert "a WhatsApp message to +15550001111" in result.output
    stored = dotenv_values(env)
    assert stored["NANOCLAW_WHATSAPP_ENABLED"] == "true"
    assert stored["NANOCLAW_WHATSAPP_OWN_NUMBER"] == "true"
    data = tmp_path / "data" / "whatsapp"
    assert wa.sessions == [data / "session.sqlite3"] and wa.sessions[0].is_file()
    assert json.loads((data / "account.json").read_text()) == {"jid": ME}
    assert [c.method for c in wa.calls] == ["connect", "get_me", "disconnect"]
    # A second run finds the link and does not open another session.
    again = CliRunner().invoke(app, ["channels", "add", "whatsapp", "--no-wait", "--no-pair"])
    assert again.exit_code == 0, again.output
    assert "linked already" in again.output and len(wa.sessions) == 1


def test_add_whatsapp_by_phone_number_shows_the_pairing_code_and_no_qr(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wa = FakeWhatsApp(linked=False, accepts_by="code", pair_code="WXYZ-2345")
    use_fake(monkeypatch, wa)
    result = CliRunner().invoke(
        app,
        ["channels", "add", "whatsapp", "--phone", "+15550001111", "--shared-number", "--no-wait"],
    )
    assert result.exit_code == 0, result.output
    (pair,) = wa.called("PairPhone")
    assert pair.args == {"phone": "15550001111", "show_push_notification": True}
    assert "enter WXYZ-2345" in result.output
    assert render_qr(QR_CODE).strip() not in result.output
    assert dotenv_values(env)["NANOCLAW_WHATSAPP_OWN_NUMBER"] == "false"


def test_a_refused_link_fails_with_whatsapps_reason(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wa = FakeWhatsApp(linked=False, refuses="companion device limit reached")
    use_fake(monkeypatch, wa)
    result = CliRunner().invoke(app, ["channels", "add", "whatsapp", "--no-wait"])
    assert result.exit_code == 1
    assert "refused the link: companion device limit reached" in result.output
    assert "NANOCLAW_WHATSAPP_ENABLED" not in dotenv_values(env)


async def test_a_link_nobody_completes_times_out_and_closes_the_socket(tmp_path: Path) -> None:
    wa = FakeWhatsApp(linked=False)
    shown: list[str] = []
    with pytest.raises(LinkError, match=r"not linked within 0\.3 s"):
        await link(
            client=wa.factory(tmp_path / "session.sqlite3"),
            show_qr=shown.append,
            show_code=shown.append,
            timeout_s=0.3,
        )
    assert shown == [QR_CODE]
    assert wa.calls[-1].method == "disconnect"


async def test_the_pairing_code_sent_in_a_whatsapp_dm_pairs_the_owner_and_welcomes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    wa = FakeWhatsApp()
    monkeypatch.setattr("nanoclaw.channels.whatsapp.adapter.new_client", wa.factory)
    enabled = settings.model_copy(update={"whatsapp_enabled": True})
    session_path(enabled).parent.mkdir(parents=True)
    session_path(enabled).touch()
    host = build_host(enabled)
    await host.start()
    try:
        await wa.wait_for("get_me")
        andy = make_agent(host.repo, "Andy")
        code = PairingCodes(path=enabled.data_path / PAIRING_FILE).issue("whatsapp", andy.id)
        dm = parse("direct_text")
        dm.Message.conversation = code
        await wa.emit(dm)
        friend = "15550003333@s.whatsapp.net"
        (welcome,) = await wa.wait_for("send_message", where=lambda c: c.args["to"] == friend)
        assert welcome.args["message"].conversation == f"Andy {MOCK}{WELCOME_PROMPT}"
        membership = host.repo.membership(f"whatsapp:{friend}")
        assert membership is not None and ("owner", None) in membership.roles
    finally:
        await host.stop()


def dotenv_values(path: Path) -> dict[str, str]:
    from nanoclaw.importer.envmap import parse_env

    return parse_env(path.read_text()) if path.is_file() else {}


def test_setup_offers_whatsapp_and_refuses_without_the_extra_naming_the_install(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from nanoclaw.setup.channel_options import WHATSAPP, option
    from nanoclaw.setup.flow import Setup, SetupOptions
    from nanoclaw.setup.progress import StepFailedError

    assert option("whatsapp") is WHATSAPP
    setup = Setup(SetupOptions(interactive=False))
    setup.ensure_extra(WHATSAPP)  # neonize is installed here: nothing to do
    missing = dataclasses.replace(WHATSAPP, requires="neonize_not_installed_here")
    with pytest.raises(StepFailedError) as failed:
        setup.ensure_extra(missing)
    assert failed.value.hint == "pip install 'nanoclaw[whatsapp]'"


async def test_setups_whatsapp_check_links_and_names_where_to_send_the_code(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nanoclaw.settings import load_settings
    from nanoclaw.setup.channel_options import WHATSAPP

    wa = FakeWhatsApp(linked=False, accepts_by="qr")
    use_fake(monkeypatch, wa)
    account = await WHATSAPP.check(load_settings(), {})
    assert account == ME
    assert render_qr(QR_CODE).strip() in capsys.readouterr().out
    assert WHATSAPP.where_to_send(account, "ABCD-EFGH").startswith(
        "a WhatsApp message to +15550001111 from your phone: ABCD-EFGH"
    )
    assert dict(WHATSAPP.fixed) == {"NANOCLAW_WHATSAPP_ENABLED": "true"}


def test_add_whatsapp_links_pairs_the_owner_and_the_welcome_arrives(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole command, as a new user runs it: QR, link, code sent from the phone, welcome."""
    owner = "15550003333@s.whatsapp.net"
    issued: list[str] = []
    issue = PairingCodes.issue

    def remember(self: PairingCodes, channel: str, agent_group_id: str) -> str:
        code = issue(self, channel, agent_group_id)
        issued.append(code)  # what the user reads on the screen
        return code

    async def owner_sends_the_code(fake: FakeWhatsApp) -> None:
        dm = parse("direct_text")  # from the owner's phone to the assistant's number
        dm.Message.conversation = issued[-1]
        await fake.emit(dm)

    wa = FakeWhatsApp(linked=False, accepts_by="qr", after_login=owner_sends_the_code)
    use_fake(monkeypatch, wa)
    monkeypatch.setattr("nanoclaw.channels.whatsapp.adapter.new_client", wa.factory)
    monkeypatch.setattr(PairingCodes, "issue", remember)
    result = CliRunner().invoke(app, ["channels", "add", "whatsapp", "--timeout", "45"])
    assert result.exit_code == 0, result.output
    assert f"Paired whatsapp:{owner} as owner" in result.output
    welcome = [c for c in wa.sent() if c.args["to"] == owner]
    assert [c.args["message"].conversation for c in welcome] == [f"Andy {MOCK}{WELCOME_PROMPT}"]
