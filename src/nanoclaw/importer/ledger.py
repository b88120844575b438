"""What earlier imports of one source created here (source key → our id), so a second run reuses it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from nanoclaw.importer.model import SourceInstall


@dataclass
class Ledger:
    path: Path
    agents: dict[str, str] = field(default_factory=dict)  # source key → agent group id
    global_md: bool = False

    @classmethod
    def load(cls, data_dir: Path, install: SourceInstall) -> Ledger:
        digest = hashlib.sha256(f"{install.kind}:{install.root}".encode()).hexdigest()[:16]
        path = data_dir / "imports" / f"{install.kind}-{digest}.json"
        ledger = cls(path=path)
        if path.is_file():
            data = json.loads(path.read_text())
            ledger.agents = {str(k): str(v) for k, v in data.get("agents", {}).items()}
            ledger.global_md = bool(data.get("global_md", False))
        return ledger

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"agents": self.agents, "global_md": self.global_md}, indent=2))
        tmp.replace(self.path)
