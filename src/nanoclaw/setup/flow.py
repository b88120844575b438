"""``nanoclaw setup``: from an installed checkout to an always-on assistant that answered once.

Steps, in order (each shown with its elapsed time and recorded in ``logs/setup.log``):
credential → time zone → agent and owner → service → model check (through the running host's
credential proxy; with a terminal, a failure offers to enter the credential again) →
end-to-end check (a scratch agent and chat, deleted afterwards) → import (reserved) → first
channel and its pairing. Without a terminal every answer comes from flags or the environment,
and any failure exits non-zero naming the cause.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from nanoclaw.contract.timeutil import now_iso
from nanoclaw.errors import NanoclawError
from nanoclaw.settings import Settings, detect_host_timezone, load_settings

from . import credential as cred
from .channel_options import CHANNEL_OPTIONS, TERMINAL, ChannelOption, configured_values, option
from .e2e import end_to_end_check
from .envfile import env_file_path, read_env, store_env
from .modelcheck import check_model
from .onboarding import choose_agent_name, choose_owner_name, choose_timezone
from .progress import Progress, StepFailedError
from .prompts import NoTerminalError, Prompter

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class SetupOptions:
    interactive: bool
    credential: cred.CredentialFlags = field(default_factory=cred.CredentialFlags)
    timezone: str | None = None
    owner_name: str | None = None
    agent_name: str | None = None
    channel: str | None = None
    channel_values: dict[str, str] = field(default_factory=dict)  # env key → value (from flags)
    check_timeout_s: float = 90.0
    pair_timeout_s: float = 600.0


@dataclass
class SetupResult:
    code: int
    open_chat: bool = False


class Setup:
    def __init__(self, options: SetupOptions, *, progress: Progress | None = None) -> None:
        self.options = options
        self.settings = load_settings()
        self.env_file = env_file_path(self.settings)
        self.progress = progress or Progress(log_path=self.settings.logs_path / "setup.log")
        self.prompter = Prompter(interactive=options.interactive)

    def reload(self) -> Settings:
        self.settings = load_settings()
        return self.settings

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> SetupResult:
        p = self.progress
        p.log(f"## {now_iso()} · setup (python) started; interactive={self.options.interactive}")
        try:
            credential = self.step_credential(force_ask=False)
            self.step_timezone()
            self.step_agent()
            self.step_service()
            self.step_model_check(credential)
            self.step_end_to_end()
            self.step_import()
            self.step_channel()
        except StepFailedError as exc:
            p.log(f"## {now_iso()} · setup failed at {exc.step}")
            print(f"\nSetup failed at step '{exc.step}': {exc}", flush=True)
            if exc.hint:
                print(f"What to do: {exc.hint}", flush=True)
            print(f"Details: {self.progress.log_path}", flush=True)
            return SetupResult(EXIT_FAILED)
        except NoTerminalError as exc:
            p.log(f"## {now_iso()} · setup needs an answer: {exc}")
            print(f"\nSetup needs an answer and there is no terminal: {exc}", flush=True)
            print(
                "Pass it as a flag (bash nanoclaw.sh --help) or an environment variable.",
                flush=True,
            )
            return SetupResult(EXIT_USAGE)
        p.log(f"## {now_iso()} · setup completed in {p.elapsed_s():.1f}s")
        self.summary()
        return SetupResult(EXIT_OK, open_chat=self.options.interactive)

    # -- steps -----------------------------------------------------------------------------------
    def step_credential(self, *, force_ask: bool) -> cred.Credential:
        with self.progress.step("credential", "Model credential") as rec:
            current = (
                None
                if force_ask
                else cred.found(self.settings, self.options.credential, self.env_file)
            )
            if (
                current is not None
                and self.prompter.interactive
                and not _from_flag(current)
                and not self.prompter.confirm(f"Use {current.describe()}?")
            ):
                current = None
            if current is None:
                if self.prompter.interactive:
                    current = cred.ask(self.prompter, default_url=self.settings.anthropic_base_url)
                else:
                    current = cred.Credential(
                        cred.CredentialKind.MOCK, source="no credential given and no terminal"
                    )
                    self.progress.warn(
                        "no credential given: using the mock model "
                        "(pass --api-key, or --base-url and --auth-token, to use a real model)"
                    )
            cred.store(self.env_file, current)
            for name in cred.conflicting_environment(current):
                self.progress.warn(
                    f"{name} is set in this shell and overrides .env for commands run here"
                )
            self.reload()
            rec.done(current.describe(), kind=current.kind.value, source=current.source)
            return current

    def step_timezone(self) -> None:
        with self.progress.step("timezone", "Time zone") as rec:
            given = self.options.timezone or os.environ.get("NANOCLAW_TIMEZONE")
            stored = read_env(self.env_file).get("NANOCLAW_TIMEZONE")
            zone = choose_timezone(
                self.prompter, given=given, detected=stored or detect_host_timezone()
            )
            store_env(self.env_file, {"NANOCLAW_TIMEZONE": zone})
            self.reload()
            rec.done(f"time zone {zone}", timezone=zone)

    def step_agent(self) -> None:
        from nanoclaw.admin.bootstrap import initialize, operator_handle

        with self.progress.step("agent", "Your assistant") as rec:
            existing, owner_name = _existing(self.settings)
            agent_name = existing or choose_agent_name(
                self.prompter, given=self.options.agent_name, default=self.settings.assistant_name
            )
            owner = choose_owner_name(
                self.prompter, given=self.options.owner_name, current=owner_name
            )
            report = initialize(self.settings, agent_name=agent_name, owner_name=owner)
            # `nanoclaw chat` shows replies under this name.
            store_env(self.env_file, {"NANOCLAW_ASSISTANT_NAME": report.agent_name})
            self.reload()
            verb = "created" if report.created_agent else "using"
            rec.done(
                f"{verb} agent {report.agent_name} (groups/{report.agent_folder}/); "
                f"owner {owner} (cli:{operator_handle()})",
                agent=report.agent_name,
                owner=owner,
            )

    def step_service(self) -> None:
        from nanoclaw.service.control import ServiceControl
        from nanoclaw.service.current import restart_if_changed, running_state
        from nanoclaw.service.manager import ManagerKind

        with self.progress.step("service", "Always-on host") as rec:
            control = ServiceControl(settings=self.settings)
            installed = control.install()
            if installed.kind is ManagerKind.FALLBACK:
                self.progress.warn(
                    f"no service manager is usable here ({installed.reason}): a supervising "
                    "process restarts the host after a crash, but it will NOT survive a reboot "
                    "(run `nanoclaw start` after booting)"
                )
            was = running_state(self.settings)
            state = restart_if_changed(self.settings, control) if was else control.start()
            assert state is not None
            action = "running" if was is not None and was.pid == state.pid else "started"
            rec.done(
                f"host {action} (pid {state.pid}) under {installed.kind.value}",
                manager=installed.kind.value,
                unit=installed.unit_path or "-",
                settings_hash=state.settings_hash,
            )

    def step_model_check(self, credential: cred.Credential) -> None:
        from nanoclaw.service.current import restart_if_changed, running_state

        while True:
            with self.progress.step(
                "model-check", "Trying the credential (one real request)"
            ) as rec:
                if credential.kind is cred.CredentialKind.MOCK:
                    rec.skip("the mock model needs no credential")
                    return
                result = check_model(running_state(self.settings))
                if result.ok:
                    rec.done(result.detail, status=str(result.status))
                    return
                if not self.prompter.interactive:
                    raise StepFailedError("model-check", result.detail, hint=result.hint)
                self.progress.warn(f"{result.detail}")
                if result.hint:
                    self.progress.say(result.hint)
                retry = self.prompter.confirm("Enter the credential again?")
                if not retry:
                    raise StepFailedError("model-check", result.detail, hint=result.hint)
                rec.skip(f"{result.outcome.value}: entering it again")
            credential = self.step_credential(force_ask=True)
            restart_if_changed(self.settings)

    def step_end_to_end(self) -> None:
        with self.progress.step("end-to-end", "Checking end to end (a scratch agent)") as rec:
            result = end_to_end_check(self.settings, timeout_s=self.options.check_timeout_s)
            if not result.ok:
                raise StepFailedError(
                    "end-to-end",
                    f"the check message got no proper answer: {result.detail}",
                    hint="see `nanoclaw logs`; `nanoclaw doctor` checks every part",
                )
            rec.done(f"a scratch agent answered: {result.detail[:120]}")

    def step_import(self) -> None:
        """Offer ``nanoclaw import`` when an earlier NanoClaw install is found (docs/import.md).

        After the end-to-end check (the host works) and before the first channel, so channel
        credentials the import brings along are seen by the channel step. No install: a silent
        skip. Without a terminal nothing is imported; setup says how.
        """
        from pathlib import Path

        from nanoclaw.importer.detect import detect

        try:
            found = detect(None, project_root=self.settings.root, home=Path.home())
        except NanoclawError:
            found = None
        if found is None:
            return
        with self.progress.step("import", "An earlier NanoClaw install") as rec:
            command = f"nanoclaw import {found.root}"
            if not self.prompter.interactive:
                rec.skip(f"found {found.kind.value} at {found.root}; to bring it in: {command}")
                return
            if not self.prompter.confirm(
                f"Found a NanoClaw {found.kind.value} install at {found.root}. Import it now?",
                default=True,
            ):
                rec.skip(f"not imported; any time later: {command}")
                return
            import subprocess
            import sys

            code = subprocess.call(
                [sys.executable, "-m", "nanoclaw.cli", "import", str(found.root)]
            )
            if code not in (0, 1):
                rec.skip(f"the import stopped (exit {code}); run it again: {command}")
                return
            self.reload()
            rec.done(
                "imported (report under logs/import/)"
                + (" with problems listed in the report" if code == 1 else "")
            )

    def step_channel(self) -> None:
        with self.progress.step("channel", "Your first chat channel") as rec:
            choice = self.options.channel
            if choice is None and self.prompter.interactive:
                choice = self.prompter.choose(
                    "Where do you want to talk to your assistant? (the terminal always works)",
                    [(TERMINAL, "Only the terminal for now (nanoclaw chat)")]
                    + [(o.name, o.title) for o in CHANNEL_OPTIONS],
                    default=TERMINAL,
                )
            if choice in (None, TERMINAL):
                rec.done("the terminal: `nanoclaw chat`", channel=TERMINAL)
                return
            picked = option(choice)
            if picked is None:
                names = ", ".join([TERMINAL, *(o.name for o in CHANNEL_OPTIONS)])
                raise StepFailedError(
                    "channel", f"unknown channel {choice!r}", hint=f"use one of {names}"
                )
            paired = self.add_channel(picked)
            rec.done(paired, channel=picked.name)

    def add_channel(self, picked: ChannelOption) -> str:
        from nanoclaw.channels.pairing import PAIRING_FILE, PairingCodes
        from nanoclaw.cli.channels import wait_for_result
        from nanoclaw.service.current import restart_if_changed

        values = {**configured_values(picked, self.settings), **self.options.channel_values}
        self.ensure_extra(picked)
        while True:
            for f in picked.fields:
                if f.env_key not in values:
                    values[f.env_key] = self.prompter.secret(f.label)
            try:
                bot = asyncio.run(picked.check(self.settings, values))
            except NanoclawError as exc:
                if not self.prompter.interactive or not self.prompter.confirm(
                    f"{exc}. Enter it again?"
                ):
                    raise StepFailedError(
                        "channel", str(exc), hint="check the token and try again"
                    ) from exc
                values = {}
                continue
            break
        accepted = f"credentials accepted (bot @{bot})" if picked.fields else f"linked as {bot}"
        self.progress.say(f"{picked.name} {accepted}")
        store_env(self.env_file, {**values, **dict(picked.fixed)})
        self.reload()
        restart_if_changed(self.settings)
        paired_user = _paired_owner(self.settings, picked.name)
        if paired_user is not None:
            return f"{picked.name}: paired already ({paired_user})"
        group_id = _first_agent_id(self.settings)
        since = now_iso()
        code = PairingCodes(path=self.settings.data_path / PAIRING_FILE).issue(
            picked.name, group_id
        )
        self.progress.say(f"Pairing code: {code} (valid 10 minutes)")
        self.progress.say(f"Prove it's you: open {picked.where_to_send(bot, code)}")
        self.progress.say("Waiting for the code…")
        try:
            result = asyncio.run(
                wait_for_result(self.settings, picked.name, since, self.options.pair_timeout_s)
            )
        except TimeoutError:
            raise StepFailedError(
                "channel",
                f"no pairing code arrived within {self.options.pair_timeout_s:g} s",
                hint=f"run `nanoclaw channels add {picked.name}` to pair later",
            ) from None
        return (
            f"{picked.name}: paired {result['user_id']} as {result['role']}; the welcome was sent"
        )

    def ensure_extra(self, picked: ChannelOption) -> None:
        """Offer to install a channel's optional extra (WhatsApp's neonize) when it is missing."""
        import importlib.util
        import subprocess
        import sys

        if picked.requires is None or importlib.util.find_spec(picked.requires) is not None:
            return
        command = [sys.executable, "-m", "pip", "install", *picked.install]
        hint = f"pip install 'nanoclaw[{picked.name}]'"
        if not self.prompter.interactive or not self.prompter.confirm(
            f"{picked.name} needs {picked.requires}, not installed. Install it now"
            f" ({' '.join(command[3:])})?"
        ):
            raise StepFailedError("channel", f"{picked.requires} is not installed", hint=hint)
        if subprocess.call(command) != 0 or importlib.util.find_spec(picked.requires) is None:
            raise StepFailedError("channel", f"installing {picked.requires} failed", hint=hint)

    def summary(self) -> None:
        print("\nNanoClaw is set up and running.", flush=True)
        print('  Chat:     nanoclaw chat        (or: nanoclaw chat -m "hello")', flush=True)
        print("  Status:   nanoclaw status      Logs: nanoclaw logs -f", flush=True)
        print("  Service:  nanoclaw service status   (start | stop | restart)", flush=True)


def _from_flag(credential: cred.Credential) -> bool:
    return credential.source.startswith("from flag") or credential.source == "flag --mock"


def _existing(settings: Settings) -> tuple[str | None, str | None]:
    """(the first agent's name, the terminal owner's display name), when they exist."""
    from nanoclaw.admin.bootstrap import operator_handle
    from nanoclaw.admin.store import AdminStore
    from nanoclaw.db.central import CentralDB
    from nanoclaw.db.repository import Repository

    from .e2e import CHECK_PREFIX

    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    try:
        db.migrate()
        groups = [g for g in Repository(db).agent_groups() if not g.folder.startswith(CHECK_PREFIX)]
        user = AdminStore(db).user(f"cli:{operator_handle()}")
        return (groups[0].name if groups else None, user.display_name if user else None)
    finally:
        db.dispose()


def _first_agent_id(settings: Settings) -> str:
    from nanoclaw.db.central import CentralDB
    from nanoclaw.db.repository import Repository

    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    try:
        return Repository(db).agent_groups()[0].id
    finally:
        db.dispose()


def _paired_owner(settings: Settings, channel: str) -> str | None:
    from sqlalchemy import select

    from nanoclaw.db.central import CentralDB
    from nanoclaw.db.models import UserRole

    db = CentralDB(path=settings.central_db_path, migrations_root=settings.migrations_path)
    try:
        with db.session() as s:
            return s.scalar(
                select(UserRole.user_id)
                .where(UserRole.role == "owner", UserRole.user_id.startswith(f"{channel}:"))
                .limit(1)
            )
    finally:
        db.dispose()
