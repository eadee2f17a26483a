"""A conversation with the assistant: turns, the prompt messages within a token budget, and files.

Saved as JSON (everything, for loading back) or Markdown (for reading; it loads back too: each
turn carries its details in an HTML comment, and lines of the text that look like the file's own
headings are escaped with a backslash). No Qt.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.assistant.llm import ChatMessage, trim_history
from workers.assistant.options import DEFAULT_SYSTEM_PROMPT
from workers.errors import UserError
from workers.files import save_bytes

FORMAT = "snowai-conversation"
VERSION = 1
SOURCES = ("voice", "text")


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class Turn:
    id: int
    user: str
    assistant: str = ""
    interrupted: bool = False
    #: "voice" (spoken) or "text" (typed).
    source: str = "voice"
    #: Milliseconds per stage ("asr_ms", "first_token_ms", "first_audio_ms", ...).
    timings: dict[str, float] = field(default_factory=dict)
    #: ISO time the turn started.
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "assistant": self.assistant,
            "interrupted": self.interrupted,
            "source": self.source,
            "timings": dict(self.timings),
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: Any, fallback_id: int) -> Turn:
        if not isinstance(data, dict):
            raise ValueError("a turn is not an object")
        user = data.get("user", "")
        assistant = data.get("assistant", "")
        if not isinstance(user, str) or not isinstance(assistant, str):
            raise ValueError("a turn's text is not a string")
        timings_raw = data.get("timings") or {}
        if not isinstance(timings_raw, dict):
            raise ValueError("a turn's timings are not an object")
        timings = {str(k): t for k, v in timings_raw.items() if (t := _finite(v)) is not None}
        return cls(
            id=_turn_id(data.get("id", fallback_id), fallback_id),
            user=user,
            assistant=assistant,
            interrupted=bool(data.get("interrupted", False)),
            source=str(data.get("source") or "voice"),
            timings=timings,
            created=str(data.get("created") or ""),
        )


def _finite(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (text, booleans, inf, 1e400, 10**400)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _turn_id(value: Any, fallback: int) -> int:
    """A turn number from a file (a number or digits); ``fallback`` when it is missing or not one."""
    if isinstance(value, str):
        value = value.strip()
        if not value.lstrip("-").isdigit() or len(value) > 18:
            return fallback
        return int(value)
    number = _finite(value)
    if number is None or abs(number) >= 2**53:
        return fallback
    return int(number)


def _json(text: str) -> Any:
    """``json.loads`` whose every failure is a ValueError (nesting too deep included)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON is nested far too deep") from None


@dataclass
class Conversation:
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    turns: list[Turn] = field(default_factory=list)
    created: str = field(default_factory=now_iso)

    # ---- turns ----
    def new_turn(self, user: str, source: str = "voice") -> Turn:
        next_id = max((t.id for t in self.turns), default=0) + 1
        turn = Turn(id=next_id, user=user, source=source, created=now_iso())
        self.turns.append(turn)
        return turn

    @property
    def last_turn(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    def turn(self, turn_id: int) -> Turn | None:
        return next((t for t in self.turns if t.id == turn_id), None)

    def clear(self) -> None:
        self.turns.clear()

    def messages(self, *, budget: int, count: Callable[[str], int]) -> list[ChatMessage]:
        """The system prompt and the newest turns that fit in ``budget`` tokens, as chat messages.

        The newest user message is always included; a reply that was interrupted is included as far
        as it was spoken.
        """
        messages: list[ChatMessage] = []
        if self.system_prompt.strip():
            messages.append(ChatMessage("system", self.system_prompt.strip()))
        for turn in self.turns:
            if turn.user.strip():
                messages.append(ChatMessage("user", turn.user.strip()))
            if turn.assistant.strip():
                messages.append(ChatMessage("assistant", turn.assistant.strip()))
        return trim_history(messages, budget, count)

    # ---- JSON ----
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "created": self.created,
            "system_prompt": self.system_prompt,
            "turns": [t.to_dict() for t in self.turns],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Conversation:
        try:
            data = _json(text)
        except ValueError as exc:
            raise UserError(f"This is not a saved conversation (the JSON is damaged: {exc}).") from None
        if not isinstance(data, dict) or not isinstance(data.get("turns", None), list):
            raise UserError("This JSON file is not a saved conversation (it has no list of turns).")
        if data.get("format") not in (None, FORMAT):
            raise UserError(f"This JSON file is a {data.get('format')!r} file, not a saved conversation.")
        system = data.get("system_prompt", "")
        if not isinstance(system, str):
            raise UserError("This saved conversation is damaged (its system prompt is not text).")
        try:
            turns = [Turn.from_dict(t, i + 1) for i, t in enumerate(data["turns"])]
        except (ValueError, TypeError) as exc:
            raise UserError(f"This saved conversation is damaged ({exc}).") from None
        return cls(system_prompt=system, turns=turns, created=str(data.get("created") or now_iso()))

    # ---- Markdown ----
    def to_markdown(self) -> str:
        header = json.dumps({"version": VERSION, "created": self.created})
        out = ["# Conversation", "", f"<!-- {FORMAT} {header} -->", ""]
        out += ["## System prompt", "", _escape(self.system_prompt), ""]
        for turn in self.turns:
            meta = {k: v for k, v in turn.to_dict().items() if k not in ("user", "assistant")}
            out += [f"## Turn {turn.id}", "", f"<!-- turn {json.dumps(meta, ensure_ascii=False)} -->", ""]
            out += [_USER, "", _escape(turn.user), ""]
            out += [_ASSISTANT, "", _escape(turn.assistant), ""]
            if turn.interrupted:
                out += [_INTERRUPTED, ""]
        return "\n".join(out).rstrip("\n") + "\n"

    @classmethod
    def from_markdown(cls, text: str) -> Conversation:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        sections: list[tuple[str, list[str]]] = []
        created = ""
        for line in lines:
            if line.startswith("## "):
                sections.append((line[3:].strip(), []))
            elif sections:
                sections[-1][1].append(line)
            else:
                m = re.match(rf"<!--\s*{FORMAT}\s+(.*?)\s*-->\s*$", line.strip())
                if m:
                    try:
                        created = str(_json(m.group(1)).get("created") or "")
                    except (ValueError, AttributeError):
                        created = ""
        system: str | None = None
        turns: list[Turn] = []
        for title, body in sections:
            if title.lower() == "system prompt":
                system = _unescape_block(body)
            elif re.match(r"turn\b", title, re.IGNORECASE):
                turns.append(_parse_turn(title, body, len(turns) + 1))
        if system is None and not turns:
            raise UserError("This Markdown file is not a saved conversation (it has no turns).")
        return cls(
            system_prompt=system if system is not None else DEFAULT_SYSTEM_PROMPT,
            turns=turns,
            created=created or now_iso(),
        )

    # ---- files ----
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            text = self.to_json()
        elif suffix in (".md", ".markdown"):
            text = self.to_markdown()
        else:
            raise UserError(f"Save the conversation as .json or .md, not {suffix or 'a file without an extension'}.")
        return save_bytes(path, text.encode("utf-8"))

    @classmethod
    def load(cls, path: str | Path) -> Conversation:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise UserError(f"The conversation file {path} was not found.") from None
        except IsADirectoryError:
            raise UserError(f"{path} is a folder, not a conversation file.") from None
        except OSError as exc:
            raise UserError(f"{path.name} could not be read: {exc.strerror or exc}.") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UserError(f"{path.name} is not a saved conversation (it is not UTF-8 text).") from None
        if not text.strip():
            raise UserError(f"{path.name} is empty; it is not a saved conversation.")
        suffix = path.suffix.lower()
        try:
            if suffix == ".json" or (suffix not in (".md", ".markdown") and text.lstrip().startswith("{")):
                return cls.from_json(text)
            return cls.from_markdown(text)
        except UserError as exc:
            raise UserError(f"{path.name}: {exc}") from None


_USER = "**User:**"
_ASSISTANT = "**Assistant:**"
_INTERRUPTED = "*(interrupted)*"
# Lines of text that would read as the file's own structure get one more leading backslash.
_STRUCTURE = re.compile(r"^(\\*)(## |\*\*User:\*\*|\*\*Assistant:\*\*|\*\(interrupted\)\*|<!-- turn )")


def _escape(text: str) -> str:
    return "\n".join(_STRUCTURE.sub(r"\\\1\2", line) for line in text.split("\n"))


def _unescape_line(line: str) -> str:
    m = _STRUCTURE.match(line)
    if m and m.group(1):
        return line[1:]
    return line


def _unescape_block(lines: list[str]) -> str:
    body = "\n".join(_unescape_line(x) for x in lines)
    return body.strip("\n").strip()


def _parse_turn(title: str, body: list[str], fallback_id: int) -> Turn:
    meta: dict[str, Any] = {}
    user_at = assistant_at = -1
    interrupted_at: list[int] = []
    for i, line in enumerate(body):
        m = re.match(r"<!-- turn (.*?)\s*-->$", line.rstrip())
        if m and not meta:
            try:
                loaded = _json(m.group(1))
                meta = loaded if isinstance(loaded, dict) else {}
            except ValueError:
                meta = {}
            continue
        if line == _USER and user_at < 0:
            user_at = i
        elif line == _ASSISTANT and assistant_at < 0 and user_at >= 0:
            assistant_at = i
        elif line == _INTERRUPTED:
            interrupted_at.append(i)
    if user_at < 0:
        raise UserError(f"This Markdown conversation is damaged: '{title}' has no **User:** part.")
    end_user = assistant_at if assistant_at >= 0 else len(body)
    user = _unescape_block(body[user_at + 1 : end_user])
    assistant = ""
    interrupted = bool(meta.get("interrupted", False))
    if assistant_at >= 0:
        part = body[assistant_at + 1 :]
        stop = next((j for j, line in enumerate(part) if line == _INTERRUPTED), None)
        if stop is not None:
            interrupted = True
            part = part[:stop]
        part = [line for line in part if not line.startswith("<!-- turn ")]
        assistant = _unescape_block(part)
    number = re.search(r"\d+", title)
    data = dict(meta)
    data.update({"user": user, "assistant": assistant, "interrupted": interrupted})
    if "id" not in data and number:
        data["id"] = int(number.group())
    try:
        return Turn.from_dict(data, fallback_id)
    except (ValueError, TypeError) as exc:
        raise UserError(f"This Markdown conversation is damaged ({exc}).") from None
