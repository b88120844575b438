"""Pairing: a one-time code the operator sends to the bot in a private chat to prove who they are.

``nanoclaw channels add`` issues the code (only its SHA-256 is stored, in
``data/pairing.json``, with an expiry); the host's ``Pairer`` sees it arrive in a DM, makes
the sender an owner (the operator on that platform), wires that DM to the chosen
agent, and routes a welcome request to the agent so the greeting takes the normal pipeline.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from nanoclaw.channels.base import InboundEvent, InboundMessage, user_id_of
from nanoclaw.contract.timeutil import now_iso, to_iso, utc_now
from nanoclaw.db.repository import Repository
from nanoclaw.executors import Executors

log = logging.getLogger("nanoclaw.channels.pairing")

PAIRING_FILE = "pairing.json"
CODE_TTL_S = 600.0
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L
CODE_LENGTH = 8
WELCOME_PROMPT = (
    "I just paired this chat with you as your operator. "
    "Say hello in one or two sentences and tell me what you can do."
)
_CODE_TEXT = re.compile(r"^(?:/(?:start|pair)(?:@\w+)?\s+)?([A-Za-z0-9 -]{8,20})$")


def _digest(code: str) -> str:
    return hashlib.sha256(normalize(code).encode()).hexdigest()


def normalize(code: str) -> str:
    return re.sub(r"[\s-]", "", code).upper()


@dataclass(frozen=True)
class PairingResult:
    channel_type: str
    user_id: str
    platform_id: str
    role: str
    agent_group_id: str
    message_id: str  # the welcome request routed to the agent


class PairingCodes:
    """The pending codes and finished pairings, in one small JSON file."""

    def __init__(self, *, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = {}
        data.setdefault("codes", [])
        data.setdefault("results", [])
        return data  # type: ignore[no-any-return]

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.chmod(0o600)
        tmp.replace(self.path)

    def issue(self, channel_type: str, agent_group_id: str, *, ttl_s: float = CODE_TTL_S) -> str:
        raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        code = f"{raw[:4]}-{raw[4:]}"
        data = self._load()
        now = now_iso()
        data["codes"] = [c for c in data["codes"] if c["expires_at"] > now]
        data["codes"].append(
            {
                "channel_type": channel_type,
                "sha256": _digest(code),
                "agent_group_id": agent_group_id,
                "expires_at": to_iso(utc_now() + timedelta(seconds=ttl_s)),
            }
        )
        self._save(data)
        return code

    def take(self, channel_type: str, text: str) -> str | None:
        """If ``text`` is a live code for this channel, consume it and return its agent group id."""
        match = _CODE_TEXT.match(text.strip())
        if match is None or not self.path.exists():
            return None
        digest = _digest(match.group(1))
        data = self._load()
        now = now_iso()
        for entry in data["codes"]:
            if (
                entry["channel_type"] == channel_type
                and entry["expires_at"] > now
                and secrets.compare_digest(entry["sha256"], digest)
            ):
                data["codes"].remove(entry)
                self._save(data)
                return str(entry["agent_group_id"])
        return None

    def record(self, result: PairingResult) -> None:
        data = self._load()
        data["results"].append({**vars(result), "at": now_iso()})
        self._save(data)

    def results(self, channel_type: str, *, since: str = "") -> list[dict[str, Any]]:
        return [
            r
            for r in self._load()["results"]
            if r["channel_type"] == channel_type and r["at"] >= since
        ]


class Pairer:
    """Host side: consumes a code sent in a DM and pairs its sender."""

    def __init__(
        self, *, executors: Executors, codes: PairingCodes, repo: Repository, route: Any
    ) -> None:
        self.executors = executors
        self.codes = codes
        self.repo = repo
        self.route = route  # Router.route: the welcome takes the normal pipeline

    async def try_pair(self, event: InboundEvent) -> bool:
        msg = event.message
        if msg.is_group or not msg.text or not msg.sender:
            return False
        agent_group_id = await self.executors.blocking.run(
            self.codes.take, event.channel_type, msg.text
        )
        if agent_group_id is None:
            return False
        result = await self.executors.central.run(self._pair, event, agent_group_id)
        log.info("paired %s on %s as %s", result.user_id, event.channel_type, result.role)
        welcome = InboundEvent(
            channel_type=event.channel_type,
            platform_id=event.platform_id,
            thread_id=event.thread_id,
            message=InboundMessage(
                id=result.message_id,
                text=WELCOME_PROMPT,
                sender=msg.sender,
                sender_name=msg.sender_name,
                is_mention=True,
                is_group=False,
                timestamp=msg.timestamp,
            ),
        )
        await self.route(welcome)
        with contextlib.suppress(OSError):
            await self.executors.blocking.run(self.codes.record, result)
        return True

    def _pair(self, event: InboundEvent, agent_group_id: str) -> PairingResult:
        msg = event.message
        user_id = user_id_of(event.channel_type, msg.sender)
        self.repo.upsert_user(user_id, kind=event.channel_type, display_name=msg.sender_name)
        # Only someone with shell access to the host can issue a code: the operator, the owner.
        role = "owner"
        self.repo.grant_role(user_id, role, granted_by="pairing")
        # The owner's DM agent reads everything; writes still need the owner's own role.
        self.repo.set_admin_scope(agent_group_id, "global")
        mg = self.repo.ensure_messaging_group(
            channel_type=event.channel_type,
            platform_id=event.platform_id,
            name=msg.sender_name or msg.sender,
            is_group=False,
            unknown_sender_policy="strict",
        )
        if not any(w.agent_group_id == agent_group_id for w in self.repo.wirings_for(mg.id)):
            self.repo.create_wiring(
                messaging_group_id=mg.id,
                agent_group_id=agent_group_id,
                engage_mode="pattern",
                engage_pattern=".",
            )
        return PairingResult(
            channel_type=event.channel_type,
            user_id=user_id,
            platform_id=event.platform_id,
            role=role,
            agent_group_id=agent_group_id,
            message_id=f"pair-{msg.id}",
        )
