"""Cutting a streamed reply into sentences to speak, and cleaning text so a voice can read it.

:class:`SentenceSplitter` takes the language model's text deltas as they arrive and hands out each
sentence as soon as it is certainly complete: a ``.``, ``!``, ``?`` or ``…`` (with any closing
quotes or brackets) followed by a space and a word that does not continue the sentence, or a line
break. "Dr. Smith", "e.g. this", "3.14", "J. R. R. Tolkien" and "1. First" stay whole. A sentence
that runs past ``soft_limit`` characters without an end is cut at its last comma, semicolon,
colon or dash, so that a long first sentence does not delay the first audio. With ``first_clause``
the first piece of a reply is handed out at its first such break (once it has that many characters):
the voice starts on "Sure, ..." or "The capital of France," while the model writes the rest.

:func:`speakable` turns Markdown-ish model output into plain words: no code, emphasis markers,
headings, list bullets, links (their text is kept), URLs, emoji or "Assistant:" prefixes.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["SentenceSplitter", "speakable"]

#: Words that end with a period without ending the sentence (lower case, without the period).
ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e", "eg", "ie",
        "approx", "no", "nr", "fig", "vol", "ch", "p", "pp", "ca", "cf", "inc", "ltd", "co", "corp", "dept",
        "est", "gen", "gov", "lt", "col", "sgt", "capt", "rev", "ave", "blvd", "rd", "jan", "feb", "mar",
        "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "a.m", "p.m", "u.s", "u.k", "min",
        "max", "mins", "hrs", "sec",
    }
)  # fmt: skip
_ENDERS = ".!?…"
_CLOSERS = "\"'”’)]}»"
_SOFT_BREAKS = re.compile(r"[,;:](?=\s)|\s[-–—](?=\s)")


class SentenceSplitter:
    """Incremental sentence splitter: text deltas in, complete sentences out."""

    def __init__(self, soft_limit: int = 160, first_clause: int = 0) -> None:
        #: Characters after which an unfinished sentence is cut at a clause boundary (0: never).
        self.soft_limit = int(soft_limit)
        #: The first piece of a reply ends at its first clause boundary past this many characters (0: no).
        self.first_clause = int(first_clause)
        self._buffer = ""
        self._handed = 0

    def reset(self) -> None:
        self._buffer = ""
        self._handed = 0

    @property
    def pending(self) -> str:
        """Text received but not yet handed out as a sentence."""
        return self._buffer

    def feed(self, delta: str) -> list[str]:
        """Add text; returns the sentences it completed (often none)."""
        if not delta:
            return []
        self._buffer += delta
        out: list[str] = []
        while True:
            cut = self._find_end(self._buffer)
            if cut is None:
                break
            sentence, self._buffer = self._buffer[:cut], self._buffer[cut:].lstrip()
            sentence = _tidy(sentence)
            if sentence:
                out.append(sentence)
        if not out and not self._handed and self.first_clause:
            cut = self._first_break(self._buffer, self.first_clause)
            if cut is not None:
                sentence, self._buffer = _tidy(self._buffer[:cut]), self._buffer[cut:].lstrip()
                if sentence:
                    out.append(sentence)
        if self.soft_limit and len(self._buffer.strip()) > self.soft_limit:
            cut = self._soft_cut(self._buffer)
            if cut is not None:
                sentence, self._buffer = _tidy(self._buffer[:cut]), self._buffer[cut:].lstrip()
                if sentence:
                    out.append(sentence)
        self._handed += len(out)
        return out

    def flush(self) -> list[str]:
        """The rest of the text as a last sentence (the reply is over)."""
        rest, self._buffer = _tidy(self._buffer), ""
        return [rest] if rest else []

    # ---- finding ends ----------------------------------------------------------------------
    def _find_end(self, text: str) -> int | None:
        """Index just after the first certain sentence end, or None if none is certain yet."""
        n = len(text)
        i = 0
        while i < n:
            ch = text[i]
            if ch == "\n":
                # A line break ends whatever came before it (paragraphs, list items, headings).
                if text[:i].strip():
                    return i + 1
                i += 1
                continue
            if ch not in _ENDERS:
                i += 1
                continue
            j = i + 1
            while j < n and (text[j] in _ENDERS or text[j] in _CLOSERS):
                j += 1
            if j >= n:
                return None  # the next delta decides
            if not text[j].isspace():
                i = j  # "3.14", "e.g.x", "?!" inside a word
                continue
            run = text[i:j]
            ellipsis = "…" in run or ".." in run
            if not ellipsis and (text[i] != "." or not _ambiguous(_word_before(text, i))):
                return j
            k = j
            while k < n and text[k] in " \t":
                k += 1
            if k >= n:
                return None  # "Dr. " or "5. ": the next word decides
            if text[k] == "\n":
                return k + 1
            if (text[k].islower() if ellipsis else self._continues(text, i, text[k])):
                i = k
                continue
            return j
        return None

    @staticmethod
    def _continues(text: str, dot: int, next_char: str) -> bool:
        """True when the punctuation at ``dot`` does not end the sentence."""
        if text[dot] != ".":
            return False
        if next_char.islower() or (next_char.isdigit() and _word_before(text, dot).isdigit()):
            return True  # "approx. five", "no. 5", "1. 2." (a list on one line reads on)
        word = _word_before(text, dot)
        if not word:
            return False
        low = word.lower()
        if low in ABBREVIATIONS:
            return True
        if len(word) == 1 and word.isalpha() and word.isupper():
            return True  # an initial: "J. R. R. Tolkien"
        line_start = text.rfind("\n", 0, dot) + 1
        # "1. First item": a number opening a line is list numbering, not a sentence.
        return word.isdigit() and not text[line_start : dot - len(word)].strip()

    @staticmethod
    def _first_break(text: str, least: int) -> int | None:
        """The end of the first clause boundary at or past ``least`` characters, or None."""
        for m in _SOFT_BREAKS.finditer(text):
            if m.end() >= least and not (m.group().startswith(",") and _digit_around(text, m.start())):
                return m.end()
        return None

    @staticmethod
    def _soft_cut(text: str) -> int | None:
        best = None
        for m in _SOFT_BREAKS.finditer(text):
            if m.end() >= 20:
                best = m.end()
        return best


def _digit_around(text: str, at: int) -> bool:
    """A comma inside a number ("1, 2 and 3" is a list, "10,000" never matches a break)."""
    return at > 0 and text[at - 1].isdigit() and at + 2 < len(text) and text[at + 2].isdigit()


def _ambiguous(word: str) -> bool:
    """Could a period after ``word`` belong to it rather than end the sentence?"""
    return (
        not word
        or word.lower() in ABBREVIATIONS
        or word.isdigit()
        or (len(word) == 1 and word.isalpha())
        or "." in word
    )


def _word_before(text: str, dot: int) -> str:
    j = dot
    while j > 0 and (text[j - 1].isalnum() or text[j - 1] == "."):
        j -= 1
    return text[j:dot].strip(".")


def _tidy(text: str) -> str:
    return " ".join(text.split())


# ---- making text speakable -------------------------------------------------------------------

_CODE_BLOCK = re.compile(r"```.*?(```|$)", re.S)
_INLINE_CODE = re.compile(r"`([^`]*)`")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"(?:https?://|ftp://|www\.)\S*[^\s.,;:!?)\]'\"]", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_HTML = re.compile(r"</?[a-zA-Z][^>]*>")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.M)
_QUOTE = re.compile(r"^\s*>+\s?", re.M)
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+", re.M)
_RULE = re.compile(r"^\s*(?:[-*_=]\s*){3,}$", re.M)
_TABLE_SEP = re.compile(r"^\s*\|?(?:\s*:?-{2,}:?\s*\|)+\s*:?-*:?\s*$", re.M)
_EMPHASIS = re.compile(r"(\*{1,3}|_{1,3}|~~)(?=\S)(.+?)(?<=\S)\1")
_ROLE = re.compile(r"^\s*(?:assistant|ai|bot|system|user|model|answer|a)\s*:\s*", re.I)
_STRAY = re.compile(r"[*#|~^`<>{}\\]|(?<!\w)_+|_+(?!\w)")


def _is_emoji(ch: str) -> bool:
    cp = ord(ch)
    if cp in (0x200D, 0xFE0E, 0xFE0F, 0x20E3) or 0x1F3FB <= cp <= 0x1F3FF:  # joiners, selectors, skin tones
        return True
    if 0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF or 0x2B00 <= cp <= 0x2BFF or 0xE0000 <= cp <= 0xE007F:
        return True
    return unicodedata.category(ch) in ("So", "Cs", "Co")


def _table_row(line: str) -> str:
    """A Markdown table row read out as its cells separated by commas."""
    if "|" not in line:
        return line
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    return ", ".join(cell for cell in cells if cell)


def speakable(text: str) -> str:
    """Plain words for a voice to read; ``""`` when nothing in ``text`` can be spoken."""
    if not text:
        return ""
    t = text.replace("\r\n", "\n")
    t = _CODE_BLOCK.sub(" ", t)
    t = _INLINE_CODE.sub(r"\1", t)
    t = _IMAGE.sub(r"\1", t)
    t = _LINK.sub(r"\1", t)
    t = _URL.sub(" ", t)
    t = _EMAIL.sub(" ", t)
    t = _HTML.sub(" ", t)
    t = _TABLE_SEP.sub(" ", t)
    t = _RULE.sub(" ", t)
    t = _HEADING.sub("", t)
    t = _QUOTE.sub("", t)
    t = _BULLET.sub("", t)
    for _ in range(2):  # nested emphasis: ***bold italic*** or **a _b_**
        t = _EMPHASIS.sub(r"\2", t)
    t = "".join(" " if _is_emoji(ch) else ch for ch in t)
    lines = [_table_row(" ".join(line.split())) for line in t.split("\n")]
    lines = [line for line in lines if line]
    t = " ".join(
        line if k == len(lines) - 1 or line[-1] in _ENDERS + _CLOSERS + ",;:" else line + "."
        for k, line in enumerate(lines)
    )
    t = _STRAY.sub(" ", t)
    t = " ".join(t.split())
    t = _ROLE.sub("", t)
    t = re.sub(r"\s+([,.;:!?])", r"\1", t)
    t = re.sub(r"(^|[\s])[,;:]+\s*", r"\1", t).strip()
    t = re.sub(r"([,;:])\1+", r"\1", t)
    if not any(ch.isalnum() for ch in t):
        return ""
    return t
