"""Voice assistant latency and speed with the shipped defaults, on spoken questions.

    python benchmarks/assistant.py [--questions 6] [--quick] [--no-anchor] [--json benchmarks/results/assistant.json]

The questions are spoken by the shipped Piper voice (Joe), padded with silence, and played in real
time by a fake microphone into the real :class:`~workers.assistant.pipeline.VoicePipeline`: Silero
VAD with Smart Turn, Whisper base (faster-whisper, int8), the shipped Gemma-3-270M (converted once from its GGUF
into the model store), Piper, and a fake speaker that plays at real-time pace. Each question is a
new conversation.

Reported, per question and as medians:

- ASR real-time factor (processing seconds / speech seconds), the recogniser alone;
- the language model's time to first token and tokens per second (on the same prompt the
  pipeline builds), the model alone;
- TTS real-time factor and the time to the first chunk of the answer's first sentence, the voice alone;
- through the whole pipeline: end of speech → first audio out, with each stage's share (the VAD's
  silence wait, ASR, the language model up to the first sentence, the voice up to the first audio);
- the anchor: when the language model runs on the studio's lean forward pass, each question is asked
  again right after with the same model through transformers' own forward pass (``anchor_*`` in the
  summary; ``--no-anchor`` skips it);
- the output head: greedy decoding with the whole float16 head and with the 4-bit shortlist scored by
  each kernel (torch's int4, ONNX Runtime's MatMulNBits), in turn on the same prompts: milliseconds a
  token and answers equal to the whole head's (``head_kernels``; ``--no-head-kernels`` skips it).

Target on a 2-core CPU: first audio within 0.6 s of the end of a one-sentence question (median),
without cutting off questions spoken with a pause in the middle (``false_cutoffs``: Smart Turn with
the words' check and the language model's reading, as the pipeline runs; ``false_cutoffs_words_only``:
without the reading; ``false_cutoffs_voice_only``: Smart Turn alone).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from common import machine, write_results  # noqa: E402

from workers.assistant.options import AssistantOptions  # noqa: E402
from workers.media.audio import resample  # noqa: E402
from workers.media.openmp import release_openmp_threads  # noqa: E402

QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What color is the sky on a clear day?",
    "Who wrote Romeo and Juliet?",
    "How many minutes are in an hour?",
    "What is the largest ocean on Earth?",
    "What do bees make?",
    "What is two plus two?",
]
TARGET_MS = 600.0


def spoken(voice: Any, text: str) -> tuple[np.ndarray, int]:
    audio = np.concatenate(list(voice.synthesize(text))).astype(np.float32)
    return audio, voice.sample_rate


def median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def stage_asr(components: Any, audio16k: np.ndarray) -> dict[str, float]:
    t0 = time.perf_counter()
    transcript = components.asr.transcribe(audio16k, "auto")
    seconds = time.perf_counter() - t0
    duration = len(audio16k) / 16000
    return {"asr_s": seconds, "speech_s": duration, "asr_rtf": seconds / duration, "text": transcript.text}


def stage_llm(components: Any, options: AssistantOptions, question: str) -> dict[str, Any]:
    from workers.assistant.conversation import Conversation

    conversation = Conversation(system_prompt=options.system_prompt)
    conversation.new_turn(question, source="text")
    messages = conversation.messages(budget=options.memory_tokens, count=components.llm.count_tokens)
    t0 = time.perf_counter()
    first = None
    parts: list[str] = []
    for delta in components.llm.stream(messages, max_new_tokens=options.max_new_tokens, temperature=0.0):
        if first is None and delta.strip():
            first = time.perf_counter()
        parts.append(delta)
    end = time.perf_counter()
    text = "".join(parts).strip()
    tokens = components.llm.count_tokens(text) if text else 0
    gen_s = end - (first or end)
    return {
        "first_token_ms": 1000 * ((first or end) - t0),
        "tokens": tokens,
        "tokens_per_s": (tokens - 1) / gen_s if tokens > 1 and gen_s > 0 else None,
        "answer": text,
    }


def stage_tts(components: Any, sentence: str) -> dict[str, float]:
    t0 = time.perf_counter()
    first = None
    samples = 0
    for chunk in components.voice.synthesize(sentence):
        if first is None:
            first = time.perf_counter()
        samples += len(chunk)
    seconds = time.perf_counter() - t0
    audio_s = samples / components.voice.sample_rate
    return {"tts_first_chunk_ms": 1000 * ((first or t0) - t0), "tts_rtf": seconds / audio_s if audio_s else 0.0}


def through_pipeline(components: Any, options: AssistantOptions, audio: np.ndarray, rate: int) -> dict[str, Any]:
    """Play one spoken question into the real pipeline; return its timings event."""
    from workers.assistant.pipeline import VoicePipeline
    from workers.media.fakes import ArrayMicrophone, PacedSpeaker

    lead = np.zeros(int(0.6 * rate), np.float32)
    tail = np.zeros(int(2.5 * rate), np.float32)
    mic = ArrayMicrophone(np.concatenate([lead, audio, tail]), rate, samplerate=48000, blocksize=480, paced=True)
    speaker = PacedSpeaker(48000, 1)
    got: dict[str, Any] = {}
    done = threading.Event()

    def on_event(event: Any) -> None:
        if event.kind == "user":
            got["heard"] = event.text
        elif event.kind == "timings":
            got["timings"] = dict(event.data)
        elif event.kind == "done":
            got["answer"] = event.text
            done.set()
        elif event.kind in ("error", "warning"):
            got.setdefault("problems", []).append(event.text)

    pipeline = VoicePipeline(components, options, source=mic, sink=speaker, on_event=on_event)
    pipeline.start()
    try:
        done.wait(60)
    finally:
        pipeline.stop()
    return got


def false_cutoffs(
    components: Any, options: AssistantOptions, questions: list[str], pause_s: float = 0.7
) -> tuple[int, int, int]:
    """How many questions, spoken with a pause of ``pause_s`` in the middle (at the quietest gap
    between two words, as benchmarks/turn_taking.py does), the pipeline's own endpointer (the default
    settings: Smart Turn asked after a short silence) ends in that pause: false cut-offs, as
    (as the pipeline runs: a turn Smart Turn calls finished is checked against the words heard so far
    and the language model's reading of them, and a turn it calls unfinished ends when that reading
    plainly closes a sentence, here transcribed and read on the spot where the pipeline has its early
    transcript and reads it as it begins the answer; with the words' list alone; the voice alone), all
    on the same take of each question."""
    from turn_taking import voiced, word_gap

    from workers.assistant.llm import ChatMessage
    from workers.assistant.pipeline import VoicePipeline
    from workers.assistant.turn_words import TEXT_END_MIN, TEXT_END_SURE, is_english, sounds_unfinished

    endpointer_of = VoicePipeline(components, options, source=None, sink=None, on_event=lambda _e: None)
    lead, tail = np.zeros(8000, np.float32), np.zeros(32000, np.float32)
    read = getattr(components.llm, "turn_end_probability", None)
    heard: dict[bytes, tuple[bool, float | None]] = {}

    def words_of(audio: np.ndarray) -> tuple[bool, float | None]:
        """Whether the word list hears the words break off, and the model's reading (English only)."""
        key = audio.tobytes()
        if key not in heard:
            transcript = components.asr.transcribe(audio, options.language)
            broken = sounds_unfinished(transcript.text, transcript.language)
            probability = None
            if not broken and read is not None and is_english(transcript.text, transcript.language):
                messages = [ChatMessage("system", options.system_prompt), ChatMessage("user", transcript.text)]
                probability = read(messages)
            heard[key] = (broken, probability)
        return heard[key]

    def heard_unfinished(audio: np.ndarray, model: bool) -> bool:
        broken, probability = words_of(audio)
        return broken or (model and probability is not None and probability < TEXT_END_MIN)

    def heard_closed(audio: np.ndarray) -> bool:
        broken, probability = words_of(audio)
        return not broken and probability is not None and probability >= TEXT_END_SURE

    counts = {"model": 0, "words": 0, "voice": 0}
    for text in questions:
        audio, rate = spoken(components.voice, text)
        speech = voiced(resample(audio[:, None], rate, 16000)[:, 0])
        cut = word_gap(speech)
        paused = np.concatenate([lead, speech[:cut], np.zeros(int(16000 * pause_s), np.float32), speech[cut:], tail])
        for how in counts:
            components.vad.reset()
            endpointer = endpointer_of._make_endpointer()
            if how != "voice" and endpointer.turn is not None:
                endpointer.words_unfinished = lambda a, model=(how == "model"): heard_unfinished(a, model)
                if how == "model":
                    endpointer.words_finished = heard_closed
            events = endpointer.feed(paused) + endpointer.flush()
            if sum(1 for e in events if e.kind == "end") > 1:  # the question was cut in two
                counts[how] += 1
    return counts["model"], counts["words"], counts["voice"]


def head_kernels(components: Any, options: AssistantOptions, questions: list[str]) -> dict[str, Any] | None:
    """Greedy decoding with each way of picking a token from Gemma's output head, turn about on the
    same prompts: the whole float16 head, and the 4-bit shortlist scored by each kernel
    (workers/assistant/short_head.py). Median milliseconds per token after the first, and whether the
    answers equal the whole head's; None when the language model has no float16 head."""
    from workers.assistant.conversation import Conversation
    from workers.assistant.short_head import KERNELS, ShortlistHead

    llm = components.llm
    fast = getattr(llm, "_fast", None)
    weight = getattr(getattr(fast, "head", None), "weight", None)
    if weight is None or not hasattr(llm, "_short"):
        return None
    kept = llm._short
    heads: dict[str, Any] = {"whole": None}
    for kernel in KERNELS:
        try:
            heads[kernel] = ShortlistHead(weight, kernel)
        except Exception as exc:  # a kernel this torch or onnxruntime lacks
            print(f"the {kernel} 4-bit kernel is unavailable: {exc}", file=sys.stderr)
    steps: dict[str, list[float]] = {name: [] for name in heads}
    answers: dict[str, list[str]] = {name: [] for name in heads}
    try:
        for _round in range(2):
            for q in questions:
                conversation = Conversation(system_prompt=options.system_prompt)
                conversation.new_turn(q, source="text")
                messages = conversation.messages(budget=options.memory_tokens, count=llm.count_tokens)
                for name, head in heads.items():
                    llm._short = head
                    stamps = []
                    parts = []
                    for delta in llm.stream(messages, max_new_tokens=options.max_new_tokens, temperature=0.0):
                        stamps.append(time.perf_counter())
                        parts.append(delta)
                    steps[name] += [1000 * (b - a) for a, b in itertools.pairwise(stamps)]
                    if _round == 0:
                        answers[name].append("".join(parts))
    finally:
        llm._short = kept
    out: dict[str, Any] = {}
    for name in heads:
        out[f"{name}_ms_per_token"] = median(steps[name])
        out[f"{name}_same_answers"] = sum(a == b for a, b in zip(answers[name], answers["whole"], strict=True))
    out["questions"] = len(questions)
    out["default_kernel"] = getattr(kept, "kernel", None)
    return out


def table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    def f(v: Any, fmt: str = "{:.0f}") -> str:
        return "–" if v is None else fmt.format(v)

    head = (
        f"{'question':<38} {'ASR RTF':>7} {'TTFT ms':>7} {'tok/s':>6} {'TTS RTF':>7} | "
        f"{'VAD':>5} {'ASR':>5} {'LLM':>5} {'TTS':>5} {'= first audio ms':>16}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['question'][:38]:<38} {f(r['asr_rtf'], '{:.3f}'):>7} {f(r['first_token_ms']):>7} "
            f"{f(r['tokens_per_s'], '{:.1f}'):>6} {f(r['tts_rtf'], '{:.3f}'):>7} | "
            f"{f(r['share_vad_ms']):>5} {f(r['share_asr_ms']):>5} {f(r['share_llm_ms']):>5} "
            f"{f(r['share_tts_ms']):>5} {f(r['first_audio_ms']):>16}"
        )
    s = summary
    lines.append("-" * len(head))
    lines.append(
        f"{'median':<38} {f(s['asr_rtf'], '{:.3f}'):>7} {f(s['first_token_ms']):>7} "
        f"{f(s['tokens_per_s'], '{:.1f}'):>6} {f(s['tts_rtf'], '{:.3f}'):>7} | "
        f"{f(s['share_vad_ms']):>5} {f(s['share_asr_ms']):>5} {f(s['share_llm_ms']):>5} "
        f"{f(s['share_tts_ms']):>5} {f(s['first_audio_ms']):>16}"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=6, help=f"how many questions (at most {len(QUESTIONS)})")
    parser.add_argument("--store", type=Path, default=None, help="model store (default: the studio's)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "assistant.json")
    parser.add_argument(
        "--turn", choices=("learned", "silence"), default="learned", help="how a turn ends (default: learned)"
    )
    parser.add_argument(
        "--no-anchor",
        dest="anchor",
        action="store_false",
        help="skip the anchor (the same model through transformers' own forward pass, question by question)",
    )
    parser.add_argument("--quick", action="store_true", help="4 questions (about 2 minutes here)")
    parser.add_argument(
        "--no-head-kernels",
        dest="head_kernels",
        action="store_false",
        help="skip timing the output head's ways of picking a token (whole float16, each 4-bit kernel)",
    )
    args = parser.parse_args()
    if args.quick:
        args.questions = min(args.questions, 4)

    from workers.assistant.pipeline import load_components
    from workers.models.store import ModelStore

    store = ModelStore(args.store) if args.store else ModelStore()
    options = AssistantOptions(turn_detection=args.turn)
    t0 = time.perf_counter()
    components = load_components(options, store=store, status=lambda s: print(s, file=sys.stderr))
    load_s = time.perf_counter() - t0
    print(f"loaded {components.describe()} in {load_s:.1f} s", file=sys.stderr)

    anchor = None
    llm_folder = getattr(components.llm, "folder", None)
    if args.anchor and getattr(components.llm, "_fast", None) is not None and llm_folder is not None:
        import dataclasses

        from workers.assistant.llm import TransformersLM

        print("loading the anchor: the same model through transformers' own forward pass", file=sys.stderr)
        anchor_llm = TransformersLM(llm_folder, device="cpu", lean=False, backend="gguf", name="anchor")
        anchor_llm.warm_up(options.system_prompt)
        anchor = dataclasses.replace(components, llm=anchor_llm)
        warm, warm_rate = spoken(components.voice, "Hello, can you hear me?")
        through_pipeline(anchor, options, warm, warm_rate)

    questions = QUESTIONS[: max(1, min(args.questions, len(QUESTIONS)))]
    # Warm-up: one question through every stage, not counted.
    warm, warm_rate = spoken(components.voice, "Hello, can you hear me?")
    through_pipeline(components, options, warm, warm_rate)

    rows = []
    for q in questions:
        audio, rate = spoken(components.voice, q)
        a16 = resample(audio[:, None], rate, 16000)[:, 0]
        row: dict[str, Any] = {"question": q}
        row.update(stage_asr(components, a16))
        llm = stage_llm(components, options, q)
        row.update({k: llm[k] for k in ("first_token_ms", "tokens", "tokens_per_s")})
        row["llm_answer"] = llm["answer"]
        first_sentence = llm["answer"].split(".")[0].strip() or "Okay."
        row.update(stage_tts(components, first_sentence))
        # As the studio's worker threads do when their work is done: this thread's OpenMP workers go,
        # so that they do not slow the pipeline's threads (workers/media/openmp.py).
        release_openmp_threads()
        got = through_pipeline(components, options, audio, rate)
        t = got.get("timings", {})
        row["heard"] = got.get("heard", "")
        row["answer"] = got.get("answer", "")
        row["problems"] = got.get("problems", [])
        row["timings"] = t
        vad = t.get("speech_end_to_vad_ms")
        asr = t.get("asr_ms")
        sent = t.get("first_sentence_ms")
        audio_ms = t.get("first_audio_ms")
        row["first_audio_ms"] = audio_ms
        # Each stage's share of the wait for the first audio (ms; the stages follow one another, but
        # the recogniser may start before the VAD's verdict, so its share is what it adds after it).
        row["share_vad_ms"] = vad
        row["share_asr_ms"] = max(0.0, asr - (vad or 0.0)) if asr is not None else None
        row["share_llm_ms"] = sent - asr if sent is not None and asr is not None else None
        row["share_tts_ms"] = audio_ms - sent if audio_ms is not None and sent is not None else None
        if anchor is not None:
            # The same question right after, with transformers' own forward pass for the language model.
            got_anchor = through_pipeline(anchor, options, audio, rate)
            row["anchor_first_audio_ms"] = got_anchor.get("timings", {}).get("first_audio_ms")
            row["anchor_first_token_ms"] = got_anchor.get("timings", {}).get("first_token_ms")
            row["anchor_answer"] = got_anchor.get("answer", "")
        rows.append(row)
        print(
            f"  {q!r} → heard {row['heard']!r}, said {row['answer'][:60]!r}, first audio {audio_ms} ms", file=sys.stderr
        )

    keys = (
        "asr_rtf",
        "first_token_ms",
        "tokens_per_s",
        "tts_rtf",
        "tts_first_chunk_ms",
        "share_vad_ms",
        "share_asr_ms",
        "share_llm_ms",
        "share_tts_ms",
        "first_audio_ms",
    )
    summary = {k: median([r[k] for r in rows]) for k in keys}
    hits = [r["first_audio_ms"] for r in rows if r["first_audio_ms"] is not None]
    summary["max_first_audio_ms"] = max(hits) if hits else None
    summary["within_target"] = sum(1 for v in hits if v <= TARGET_MS)
    summary["first_audio_median_ms"] = summary["first_audio_ms"]
    summary["first_audio_max_ms"] = summary["max_first_audio_ms"]
    if anchor is not None:
        anchor_hits = [r["anchor_first_audio_ms"] for r in rows if r.get("anchor_first_audio_ms") is not None]
        summary["anchor_first_audio_median_ms"] = median(anchor_hits)
        summary["anchor_first_audio_max_ms"] = max(anchor_hits) if anchor_hits else None
        summary["anchor_first_token_median_ms"] = median([r.get("anchor_first_token_ms") for r in rows])
        summary["same_answers_as_anchor"] = sum(1 for r in rows if r["answer"] == r.get("anchor_answer"))
    kernels = head_kernels(components, options, questions) if args.head_kernels else None
    if kernels is not None:
        summary["head_kernels"] = kernels
    summary["false_cutoffs"], summary["false_cutoffs_words_only"], summary["false_cutoffs_voice_only"] = false_cutoffs(
        components, options, list(QUESTIONS)
    )
    summary["false_cutoff_questions"] = len(QUESTIONS)
    print(table(rows, summary))
    print(
        f"\nfirst audio within {TARGET_MS:.0f} ms of the end of speech: {summary['within_target']}/{len(rows)} "
        f"(median {summary['first_audio_ms']:.0f} ms, max {summary['max_first_audio_ms']:.0f} ms)"
        if hits
        else "\nno first audio was measured"
    )
    if anchor is not None and summary.get("anchor_first_audio_median_ms") is not None:
        print(
            f"anchor (transformers' own forward pass, the same questions in turn): first audio median "
            f"{summary['anchor_first_audio_median_ms']:.0f} ms, max {summary['anchor_first_audio_max_ms']:.0f} ms; "
            f"the same answer {summary['same_answers_as_anchor']} of {len(rows)} times"
        )
    print(
        f"false cut-offs (a {0.7:.1f} s pause mid-question): {summary['false_cutoffs']} of {len(QUESTIONS)} "
        f"(without the language model's reading: {summary['false_cutoffs_words_only']}; "
        f"the voice alone: {summary['false_cutoffs_voice_only']})"
    )
    if kernels is not None:
        names = [n[: -len("_ms_per_token")] for n in kernels if n.endswith("_ms_per_token")]
        print(
            "greedy step with the output head (ms a token, median; same answers as the whole head): "
            + ", ".join(
                f"{n} {kernels[n + '_ms_per_token']:.1f} ({kernels[n + '_same_answers']}/{kernels['questions']})"
                for n in names
            )
            + f"; the pipeline used {kernels['default_kernel'] or 'the whole head'}"
        )
    result = {
        "machine": machine(),
        "components": components.describe(),
        "load_s": load_s,
        "target_ms": TARGET_MS,
        "summary": summary,
        "results": rows,
    }
    write_results(args.json, result)
    components.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
