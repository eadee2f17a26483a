"""Do the words heard so far end a sentence? A second opinion on the end of a turn (no Qt).

Smart Turn (:mod:`workers.assistant.turn`) judges the voice: a falling pitch at a pause sounds
finished, even in "Who wrote Romeo and… [thinking] …Juliet?". The early transcript, ready about when
Smart Turn answers, says what the voice cannot: a turn whose words end in "and", "the" or "my", or that
Whisper left unpunctuated or trailing off ("…", "-", ","), is not over, whatever its melody. The
endpointer (:mod:`workers.assistant.vad`) then waits through the pause as it does when Smart Turn
itself hears an unfinished sentence.

The function words are English; in other languages only the punctuation counts.

Whisper often punctuates a broken-off sentence as a whole one ("What is the capital?"), so the
words get a third reader: the assistant's own language model, asked how likely the sentence ends
where the words stop (:func:`strip_final_marks` takes Whisper's closing mark off, :func:`end_token_ids`
finds the tokens that end a sentence). Gemma 3 270M put 0.06-0.98 on 33 finished questions and
under 0.03 on 105 of 123 word-prefixes of them; the rest were questions in their own right ("What
color is the sky"). Below ``TEXT_END_MIN`` the turn waits through the pause; from
``TEXT_END_SURE`` on, a turn the voice heard as unfinished ends without waiting. Like the word list,
the reading counts for English only (it was measured on English questions).
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: Words a sentence hardly ever ends on: articles, conjunctions, possessives that need a noun,
#: hesitations. Words that can end one are left out: prepositions ("What is it made of?"), verbs
#: ("Do you know what time it is?"), pronouns ("What is this?", "Tell me about her.") and "so",
#: "though" ("I think so.", "Nice, though.").
CONTINUING_WORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "nor", "because", "although", "whereas", "unless", "if", "than",
    "my", "your", "its", "our", "their", "very", "um", "uh", "er", "erm",
})

#: Marks that end a finished sentence in the scripts Whisper writes.
_FINAL = ".?!…。？！؟।"
_TRAILING_OFF = re.compile(r"(\.\.\.|…|[-–—,;:])\s*$")
_LAST_WORD = re.compile(r"([^\W\d_]+(?:'[^\W\d_]+)?)[^\w]*$")


def is_english(text: str, language: str | None) -> bool:
    """Whether the word list (and the language model's reading, measured on English) applies: an
    English transcript, or one of unknown language in plain ASCII."""
    return (language or "").lower().startswith("en") or (language is None and str(text).isascii())


def sounds_unfinished(text: str, language: str | None = "en") -> bool:
    """True when ``text`` (Whisper's transcript of the turn so far) reads as a sentence broken off.

    ``language``: the transcript's language code; the word list is used for English only ("en", or
    None when unknown and the text is plain ASCII)."""
    words = " ".join(str(text).split())
    if not words:
        return False  # nothing heard: silence and the voice decide
    if _TRAILING_OFF.search(words):
        return True
    if words[-1] not in _FINAL and not words[-1].isdigit() and not words.endswith(('"', "'", ")")):
        return True  # Whisper punctuates a finished sentence; a broken-off one often is left open
    if not is_english(words, language):
        return False
    last = _LAST_WORD.search(words)
    return last is not None and last.group(1).lower() in CONTINUING_WORDS


#: Below this probability of the sentence ending where the words stop (the language model's
#: reading), a turn the voice calls finished waits through the pause.
TEXT_END_MIN = 0.03
#: From this probability on, a turn the voice calls unfinished ends as if it had been called
#: finished: the words plainly close a sentence. On 49 spoken questions Smart Turn called 11 finished
#: ones unfinished (they waited through the pause); Gemma 3 270M read 0.62-0.98 on them, 8 of 11 at
#: 0.7 or more. Of 57 questions broken off, the voice called 21 unfinished; one of them read above 0.7.
TEXT_END_SURE = 0.7

#: Characters a sentence-ending token may be made of, besides blanks and line ends.
_END_CHARS = frozenset(".?!…。？！؟।")


def strip_final_marks(text: str) -> str:
    """``text`` without the marks Whisper closes a sentence with (and blanks at the end)."""
    return " ".join(str(text).split()).rstrip(_FINAL + "\"'” ").rstrip()


def end_token_ids(vocab: dict[str, int], decode: Callable[[list[int]], str]) -> list[int]:
    """The ids of tokens that end a sentence or a line: a closing mark ("?", ".", "!", "…", ...) or
    line ends, with or without blanks around them. ``vocab`` maps token pieces to ids (its pieces are
    filtered cheaply first), ``decode`` turns ids into text (checked for each candidate)."""
    out = []
    for piece, token in vocab.items():
        bare = piece.replace("\u2581", "").replace("\u0120", "").replace("\u010a", "\n")
        if bare == "<0x0A>":
            bare = "\n"
        if not bare or not set(bare.strip(" \t\r\n")) <= _END_CHARS:
            continue
        text = decode([token])
        core = text.strip(" \t\r\n")
        if (core and set(core) <= _END_CHARS) or (not core and "\n" in text):
            out.append(int(token))
    return sorted(out)
