"""When does a turn end? A fixed silence against learned end-of-turn detection, on spoken questions.

    python benchmarks/turn_taking.py [--pause 0.7] [--json benchmarks/results/turn_taking.json]

Twelve questions spoken by the shipped Piper voice (the same take every run) go through the
studio's endpointer (Silero VAD) the way the microphone feeds it, twice each:

- as spoken: how long after the last word the turn ends (the wait before the assistant can answer);
- with a pause of ``--pause`` seconds in the middle (at the quietest gap between two words, between
  45 % and 70 % of the question): whether the turn ends in that pause (a false cut-off).

A third test, hesitations: eight questions broken where people hesitate, after a word that needs
more ("What is the … capital of France?"), each half spoken on its own (so the first half ends with
a speaker's closing melody: the hardest case for a model that listens to the voice), with the same
pause between them.

Policies: the fixed silence (300 ms, the setting's default, and 800 ms), learned detection
(Smart Turn v3.2 asked once after 160 ms of silence; a turn it hears as unfinished ends after
1.2 s), and learned detection with the words' check, as the assistant runs it (a turn Smart Turn
calls finished whose transcript breaks off waits through the pause; here Whisper base transcribes
the words on the spot, where the assistant has its early transcript by then), and with the language
model's reading too, as the assistant runs it (the shipped Gemma's probability that the sentence ends
where the transcript's words stop, their closing mark taken off; under ``TEXT_END_MIN`` the turn
waits through the pause; the assistant reads it in the same pass that begins the answer), and last
as the assistant runs it now: a turn Smart Turn calls unfinished also ends at once when that reading
is ``TEXT_END_SURE`` or more (the words plainly close a sentence). A synthetic voice cut
between two words keeps its flowing prosody, unlike a person who hesitates, so the cut-offs counted
here are a harsh test of the model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from assistant_fixtures import shipped_store, speech_16k  # noqa: E402
from common import machine, write_results  # noqa: E402

from workers.assistant.turn import load_turn_detector  # noqa: E402
from workers.assistant.turn_words import TEXT_END_MIN, TEXT_END_SURE, sounds_unfinished  # noqa: E402
from workers.assistant.vad import Endpointer, SileroVAD  # noqa: E402

RATE = 16000
QUESTIONS = (
    "What is the capital of France?",
    "How many minutes are there in one hour?",
    "Please tell me a short joke about cats.",
    "Who wrote the play Romeo and Juliet?",
    "Can you tell me what the weather is like in Paris today?",
    "How far is the moon from the earth?",
    "What should I cook for dinner tonight?",
    "Which planet is the largest in our solar system?",
    "Could you set a timer for ten minutes?",
    "What is the boiling point of water in Celsius?",
    "Remind me to call my sister tomorrow morning.",
    "Translate good morning into Spanish.",
)
#: Questions broken where people hesitate: after a word that needs more.
HESITATIONS = (
    ("What is the", "capital of France?"),
    ("Can you tell me the", "weather in Paris today?"),
    ("Who wrote the play Romeo and", "Juliet?"),
    ("How far is the", "moon from the earth?"),
    ("What is the capital of France and", "which language do they speak?"),
    ("Please tell me a short joke about my", "cat."),
    ("Remind me to call my", "sister tomorrow morning."),
    ("Which planet is the largest in our", "solar system?"),
)


def voiced(audio: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0] : loud[-1] + 1]


def word_gap(audio: np.ndarray) -> int:
    hop = RATE // 50
    frames = len(audio) // hop
    energy = np.array([np.sqrt(np.mean(audio[i * hop : (i + 1) * hop] ** 2)) for i in range(frames)])
    start, stop = int(frames * 0.45), int(frames * 0.7)
    return (start + int(np.argmin(energy[start:stop]))) * hop + hop // 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pause", type=float, default=0.7, help="the pause in the middle of each question (s)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "turn_taking.json")
    args = parser.parse_args()
    store = shipped_store()
    vad = SileroVAD(store=store)
    detector = load_turn_detector(store)
    from assistant_fixtures import shipped_transcriber

    transcriber = shipped_transcriber()

    def words_unfinished(audio: np.ndarray) -> bool:
        transcript = transcriber.transcribe(audio, "en")
        return sounds_unfinished(transcript.text, transcript.language)

    from workers.assistant.llm import ChatMessage, load_language_model
    from workers.assistant.options import AssistantOptions

    options = AssistantOptions()
    llm = load_language_model(options, store=store)
    readings: list[tuple[str, float | None]] = []

    read: dict[bytes, tuple[str, bool, float | None]] = {}

    def reading(audio: np.ndarray) -> tuple[str, bool, float | None]:
        """The transcript of ``audio``, whether the word list hears it break off, and the model's reading."""
        key = audio.tobytes()
        if key not in read:
            transcript = transcriber.transcribe(audio, "en")
            broken = sounds_unfinished(transcript.text, transcript.language)
            probability = None
            if not broken:
                messages = [ChatMessage("system", options.system_prompt), ChatMessage("user", transcript.text)]
                probability = llm.turn_end_probability(messages)
                readings.append((transcript.text, probability))
            read[key] = (transcript.text, broken, probability)
        return read[key]

    def words_or_model_unfinished(audio: np.ndarray) -> bool:
        _text, broken, probability = reading(audio)
        return broken or (probability is not None and probability < TEXT_END_MIN)

    def model_finished(audio: np.ndarray) -> bool:
        _text, broken, probability = reading(audio)
        return not broken and probability is not None and probability >= TEXT_END_SURE

    learned = {"min_silence_ms": 1200, "turn": detector, "turn_silence_ms": 160}
    policies: dict[str, dict[str, Any]] = {
        "fixed silence 300 ms": {"min_silence_ms": 300},
        "fixed silence 800 ms": {"min_silence_ms": 800},
        "learned (ask at 160 ms, else 1.2 s)": learned,
        "learned + words": {**learned, "words_unfinished": words_unfinished},
        "learned + words + model": {**learned, "words_unfinished": words_or_model_unfinished},
        "... + model ends unsure (the assistant)": {
            **learned,
            "words_unfinished": words_or_model_unfinished,
            "words_finished": model_finished,
        },
    }
    lead, tail = np.zeros(RATE // 2, np.float32), np.zeros(RATE * 2, np.float32)

    def ends(settings: dict[str, Any], stream: np.ndarray) -> list[float]:
        vad.reset()
        endpointer = Endpointer(vad, **settings)
        events = endpointer.feed(stream) + endpointer.flush()
        return [e.time for e in events if e.kind == "end"]

    rows = []
    for name, settings in policies.items():
        delays, cutoffs = [], 0
        for text in QUESTIONS:
            audio = voiced(speech_16k(text))
            words_end = (len(lead) + len(audio)) / RATE
            found = ends(settings, np.concatenate([lead, audio, tail]))
            delays.append(found[0] - words_end if found else float("nan"))
            cut = word_gap(audio)
            paused = np.concatenate(
                [lead, audio[:cut], np.zeros(int(RATE * args.pause), np.float32), audio[cut:], tail]
            )
            cutoffs += len(ends(settings, paused)) > 1
        hesitation_cutoffs = 0
        for first, rest in HESITATIONS:
            halves = [voiced(speech_16k(first)), voiced(speech_16k(rest))]
            paused = np.concatenate([lead, halves[0], np.zeros(int(RATE * args.pause), np.float32), halves[1], tail])
            hesitation_cutoffs += len(ends(settings, paused)) > 1
        rows.append({
            "policy": name,
            "median_end_delay_ms": round(1000 * statistics.median(delays)),
            "max_end_delay_ms": round(1000 * max(delays)),
            "false_cutoffs": cutoffs,
            "questions": len(QUESTIONS),
            "hesitation_cutoffs": hesitation_cutoffs,
            "hesitations": len(HESITATIONS),
            "delays_ms": [round(1000 * d) for d in delays],
        })  # fmt: skip
    header = (
        f"{'policy':<42} {'end after last word: median':>28} {'max':>7} {'cut-offs with a pause':>22} "
        f"{'hesitations cut off':>20}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['policy']:<42} {r['median_end_delay_ms']:>25} ms {r['max_end_delay_ms']:>4} ms "
            f"{r['false_cutoffs']:>12} of {r['questions']} {r['hesitation_cutoffs']:>12} of {r['hesitations']}"
        )
    print("\nthe language model's readings (transcript of the turn so far: probability the sentence ends there):")
    for text, probability in readings:
        print(f"  {text!r}: {'-' if probability is None else f'{probability:.3f}'}")
    learned, words, model, fixed, assistant = rows[2], rows[3], rows[4], rows[0], rows[5]
    write_results(args.json, {
        "machine": machine(),
        "pause_s": args.pause,
        "rows": rows,
        "summary": {
            "learned_median_end_delay_ms": learned["median_end_delay_ms"],
            "fixed_300_median_end_delay_ms": fixed["median_end_delay_ms"],
            "learned_false_cutoffs": learned["false_cutoffs"],
            "fixed_300_false_cutoffs": fixed["false_cutoffs"],
            "learned_words_median_end_delay_ms": words["median_end_delay_ms"],
            "learned_words_false_cutoffs": words["false_cutoffs"],
            "learned_words_model_median_end_delay_ms": model["median_end_delay_ms"],
            "learned_words_model_false_cutoffs": model["false_cutoffs"],
            "assistant_median_end_delay_ms": assistant["median_end_delay_ms"],
            "assistant_max_end_delay_ms": assistant["max_end_delay_ms"],
            "assistant_false_cutoffs": assistant["false_cutoffs"],
            "text_end_sure": TEXT_END_SURE,
            "text_end_min": TEXT_END_MIN,
            "model_readings": [[text, probability] for text, probability in readings],
            "hesitation_cutoffs": {r["policy"]: r["hesitation_cutoffs"] for r in rows},
            "hesitations": len(HESITATIONS),
            "questions": len(QUESTIONS),
        },
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
