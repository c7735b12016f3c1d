"""The Dockerfile read as build stages, for the tests that check it without a Docker engine."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Stage", "build_stage", "copied_sources", "stages"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stage:
    """One ``FROM`` and the instructions up to the next one."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, keyword: str) -> list[str]:
        """The argument text of every instruction with this keyword, in order."""
        return [args for kw, args in self.instructions if kw == keyword]


def stages(path: Path = ROOT / "Dockerfile") -> list[Stage]:
    """The Dockerfile's stages, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            base, *name = re.split(r"\s+as\s+", args, maxsplit=1, flags=re.IGNORECASE)
            result.append(Stage(base, name[0] if name else None))
        else:
            assert result, f"{keyword} before the first FROM"
            result[-1].instructions.append((keyword, args))
    return result


def copied_sources(stage: Stage) -> list[str]:
    """What the stage's ``COPY`` lines take from the build context (not ``--from`` ones)."""
    sources: list[str] = []
    for args in stage.args_of("COPY"):
        words = shlex.split(args)
        if any(w.startswith("--from=") for w in words):
            continue
        sources += [w for w in words[:-1] if not w.startswith("--")]
    return sources


def build_stage(all_stages: list[Stage]) -> Stage:
    """The one stage whose output the final stage copies (``COPY --from=<name>``)."""
    names = {
        word.removeprefix("--from=")
        for args in all_stages[-1].args_of("COPY")
        for word in shlex.split(args)
        if word.startswith("--from=")
    }
    assert len(names) == 1, f"the final stage copies from {sorted(names) or 'no stage'}"
    (name,) = names
    (stage,) = [s for s in all_stages[:-1] if s.name == name]
    return stage
