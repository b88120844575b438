"""Card button clicks on the host: an ordered list of handlers, and the built-in question answerer.

Each handler gets ``(question_id, value, user_id)`` and returns a short confirmation when the
click was its own, else None. Approvals (permissions) register first; the last handler answers
a runner's ``ask_question`` card by writing a ``question_response`` row into the asking session.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from nanoclaw.channels.cards import Refusal
from nanoclaw.contract.layout import SessionLayout
from nanoclaw.db.models import SessionRow
from nanoclaw.db.repository import Repository
from nanoclaw.executors import Executors
from nanoclaw.permissions.access import can_access
from nanoclaw.sessions.outbound_reader import SessionReader
from nanoclaw.sessions.service import SessionService

log = logging.getLogger("nanoclaw.channels.card_actions")

CardHandler = Callable[[str, str, str], Awaitable[str | None]]
WriteToAgent = Callable[..., Awaitable[None]]


class CardActions:
    def __init__(self) -> None:
        self._handlers: list[CardHandler] = []

    def add(self, handler: CardHandler, *, first: bool = False) -> None:
        if first:
            self._handlers.insert(0, handler)
        else:
            self._handlers.append(handler)

    async def dispatch(self, question_id: str, value: str, user_id: str) -> str | None:
        for handler in list(self._handlers):
            try:
                text = await handler(question_id, value, user_id)
            except Exception:
                log.exception("card handler failed for %s", question_id)
                return "That answer could not be processed."
            if text is not None:
                return text
        log.info("card click %s by %s matched no open question", question_id, user_id)
        return None


class QuestionAnswers:
    """Answers a runner's ``ask_question`` card with a ``question_response`` system row."""

    def __init__(
        self,
        *,
        executors: Executors,
        repo: Repository,
        sessions: SessionService,
        reader: SessionReader,
        write_to_agent: WriteToAgent,
        running_sessions: Callable[[], set[str]],
    ) -> None:
        self.executors = executors
        self.repo = repo
        self.sessions = sessions
        self.reader = reader
        self.write_to_agent = write_to_agent
        self.running_sessions = running_sessions
        self._answered: set[str] = set()

    async def __call__(self, question_id: str, value: str, user_id: str) -> str | None:
        found = await self.executors.central.run(self._find, question_id)
        if found is None:
            return None
        session, layout = found
        if question_id in self._answered:
            return "This question was already answered."
        mg = (
            await self.executors.central.run(
                self.repo.messaging_group_by_id, session.messaging_group_id
            )
            if session.messaging_group_id
            else None
        )
        public = mg is not None and mg.unknown_sender_policy == "public"
        membership = await self.executors.central.run(self.repo.membership, user_id)
        if not public and not can_access(membership, session.agent_group_id):
            log.warning("question %s: %s may not answer for this agent", question_id, user_id)
            return Refusal("You may not answer this question.")  # the buttons stay
        self._answered.add(question_id)
        await self.write_to_agent(
            session,
            layout,
            {
                "type": "question_response",
                "questionId": question_id,
                "selectedOption": value,
                "userId": user_id,
            },
            kind="system",
            trigger=1,
            id_hint=f"qr-{question_id}"[:120],
        )
        return "Answer sent."

    def _find(self, question_id: str) -> tuple[SessionRow, SessionLayout] | None:
        running = self.running_sessions()
        ordered = sorted(self.repo.sessions(), key=lambda s: s.id not in running)
        for session in ordered:
            layout = self.sessions.layout(session)
            try:
                rows = self.reader.outbound_rows(layout)
            except Exception:
                continue
            for row in reversed(rows):
                content = row.content
                qid = content.get("questionId")
                if qid is None and isinstance(content.get("card"), dict):
                    qid = content["card"].get("question_id")
                if qid == question_id:
                    return session, layout
        return None
