"""The studio's self-test: every shipped default model loaded by the studio's own engines, one small
inference per tool, with timings (``snowai-studio --self-test``).

It needs no display and imports no Qt. Each check is one line: PASS, FAIL (one sentence, the
traceback goes to the log file) or SKIP (something optional is not installed, such as the
InsightFace models). The checks:

- face swap: the classic engine (dlib detector, 68 landmarks, descriptor) on scikit-image's
  astronaut portrait, a swap of its mirror image onto it; InsightFace too when its models are in
  the model store;
- background removal: the first matting model installed in the store; with none (none ships on
  PyPI) a tiny ONNX model built in a temporary folder goes through the same engine, which proves
  onnxruntime and the engine path, and a note says that no matting model is installed; the 8-bit
  copy of a 512 px test model is made and checked (onnxruntime's quantizer, the sample photos);
- voice assistant: the Piper voice speaks a question, Silero VAD finds the speech, Whisper base (the
  default) transcribes it, the shipped Gemma answers it (converted once into the model store, reused later);
- voice conversion: the built-in DSP voice changer on realtime blocks, FCPE and CREPE tiny pitch
  measuring the shift it made.

:func:`run_self_test` returns a :class:`Report`; :func:`main` prints it and returns the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import platform
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from workers.errors import UserError, describe_exception
from workers.selftest_inputs import TONE_HZ, VC_RATE, build_test_matting_model, portrait, subject, voice_like_tone

if TYPE_CHECKING:
    from workers.models.store import ModelStore

log = logging.getLogger(__name__)

__all__ = ["CHECKS", "CheckResult", "Report", "format_report", "main", "run_self_test"]

PASS, FAIL, SKIP = "pass", "fail", "skip"
#: The question the Piper voice speaks; Whisper must hear all its words but one at most.
PHRASE = "What is the capital of France?"
#: The Whisper check's beam: a wider search than the assistant's live one (speed is not the point here), so
#: that one take of the phrase decides less (greedy Whisper base heard "capital of friends" in 2 of 24 takes
#: with faint noise added, a beam of five in none).
CHECK_BEAM = 5
#: The voice changer's shift (semitones); the tone it shifts is selftest_inputs.TONE_HZ.
SHIFT_SEMITONES = 4.0
#: Packages whose versions the report lists (pip names).
VERSION_PACKAGES = (
    "onnxruntime",
    "onnxruntime-gpu",
    "torch",
    "ctranslate2",
    "faster-whisper",
    "piper-tts",
    "transformers",
    "dlib-bin",
    "opencv-python-headless",
    "rembg",
    "insightface",
    "torchfcpe",
    "torchcrepe",
    "numpy",
    "PySide6-Essentials",
)


class CheckFailed(UserError):
    """A check ran but its result is wrong (the message says how)."""


class Skipped(Exception):
    """A check that cannot run here for an expected reason (the message says why)."""


@dataclass
class CheckResult:
    tool: str
    name: str
    status: str  # "pass" | "fail" | "skip"
    ms: float
    #: One sentence: what was found, what went wrong or why it was skipped.
    message: str
    #: Milliseconds of the check's stages, e.g. {"load": 812.0, "run": 95.0}.
    timings: dict[str, float] = field(default_factory=dict)
    #: A remark that is not a failure (e.g. "no matting model installed").
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status != FAIL


@dataclass
class Report:
    version: str
    frozen: bool
    python: str
    platform: str
    device: str
    runtimes: dict[str, str]
    versions: dict[str, str]
    store: str
    checks: list[CheckResult] = field(default_factory=list)
    ms: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in (PASS, FAIL, SKIP)}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


class _Context:
    """What the checks share: the model store, a scratch folder, and results handed on."""

    def __init__(self, store: ModelStore, scratch: Path) -> None:
        self.store = store
        self.scratch = scratch
        self.values: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.note = ""

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = round((time.perf_counter() - t0) * 1000.0, 1)


Check = Callable[[_Context], str]


# ---- face swap ----------------------------------------------------------------------------------


def _check_swap(engine: Any, ctx: _Context) -> str:
    from workers.face_swap.options import FaceSwapOptions

    target = portrait()
    with ctx.timed("detect"):
        faces = engine.detect(target)
    if not faces:
        raise CheckFailed(f"The {engine.name} engine found no face in the test portrait.")
    face = max(faces, key=lambda f: f.area)
    points = 0 if face.landmarks is None else len(face.landmarks)
    with ctx.timed("source"):
        source = engine.prepare_source([np.ascontiguousarray(target[:, ::-1])])
    with ctx.timed("swap"):
        out = engine.swap(target.copy(), face, source, FaceSwapOptions())
    if out.shape != target.shape:
        raise CheckFailed(f"The {engine.name} swap returned an image of the wrong size.")
    x1, y1, x2, y2 = (int(v) for v in face.bbox)
    inside = np.abs(out[y1:y2, x1:x2].astype(np.int16) - target[y1:y2, x1:x2].astype(np.int16)).mean()
    corner = np.abs(out[:40, -40:].astype(np.int16) - target[:40, -40:].astype(np.int16)).mean()
    if inside < 1.0 or corner > 0.5:
        raise CheckFailed(f"The {engine.name} swap did not change the face (mean change {inside:.1f}).")
    return (
        f"{len(faces)} face found with {points} landmarks and swapped with its mirror image "
        f"(mean change in the face {inside:.0f}/255)."
    )


def check_face_classic(ctx: _Context) -> str:
    from workers.face_swap.classic import ClassicEngine

    engine = ClassicEngine(ctx.store)
    with ctx.timed("load"):
        engine.load()
    try:
        return _check_swap(engine, ctx)
    finally:
        engine.close()


def check_face_insightface(ctx: _Context) -> str:
    from workers.face_swap.options import ready_pack, ready_swapper

    pack, swapper = ready_pack(ctx.store), ready_swapper(ctx.store)
    if pack is None or swapper is None:
        raise Skipped(
            "The InsightFace models are not installed (download them in Models); the classic engine is the "
            "offline default."
        )
    from workers.face_swap.insight import InsightEngine

    engine = InsightEngine(ctx.store, pack=pack, swapper=swapper)
    with ctx.timed("load"):
        engine.load()
    try:
        return _check_swap(engine, ctx)
    finally:
        engine.close()


# ---- background removal -------------------------------------------------------------------------


def check_matting(ctx: _Context) -> str:
    from workers.matting.engine import MattingEngine
    from workers.matting.options import MattingOptions, available_models

    installed = [m for m in available_models(ctx.store) if m.ready]
    options = MattingOptions()
    if installed:
        default = next((m for m in installed if m.id == options.model), installed[0])
        options.model = default.id
        label = default.name
    else:
        options.model = str(build_test_matting_model(ctx.scratch / "selftest-matting.onnx"))
        label = "a tiny test model"
        ctx.note = (
            "No matting model is installed (u2netp comes with setup: run scripts/setup.sh or "
            "snowai-studio models download rembg-u2netp); a tiny test model proved onnxruntime and the engine."
        )
    options.int8 = False  # the model itself; its 8-bit copy has a check of its own (below)
    engine = MattingEngine(ctx.store, options)
    image, truth = subject()
    with ctx.timed("load"):
        engine.load()
    try:
        with ctx.timed("run"):
            alpha = engine.predict_mask(image)
        engine.set_param("alpha_matting", True)
        with ctx.timed("alpha matting"):
            refined = engine.predict_mask(image)
    finally:
        engine.close()
    if alpha.shape != truth.shape or alpha.dtype != np.uint8:
        raise CheckFailed("The background-removal engine returned a mask of the wrong size or type.")
    if refined.shape != alpha.shape or refined.dtype != np.uint8:
        raise CheckFailed("Alpha matting returned a mask of the wrong size or type.")
    if not installed:
        a, b = alpha >= 128, truth >= 128
        iou = float(np.logical_and(a, b).sum() / max(1, np.logical_or(a, b).sum()))
        if iou < 0.8:
            raise CheckFailed(f"The test model's mask does not match the subject (overlap {iou:.2f}).")
        return f"{label} cut out the test subject through the engine (overlap {iou:.2f})."
    covered = float((alpha >= 128).mean())
    changed = float((refined != alpha).mean())
    return (
        f"{label} made a {alpha.shape[1]}x{alpha.shape[0]} mask ({covered:.0%} foreground); "
        f"alpha matting refined {changed:.0%} of its pixels."
    )


def check_matting_int8(ctx: _Context) -> str:
    """The 8-bit copy of a large model: quantized, checked against the model, used by the engine."""
    from workers.matting import int8
    from workers.matting.engine import MattingEngine
    from workers.matting.options import MattingOptions

    model = build_test_matting_model(ctx.scratch / "selftest-matting-512.onnx", 512, deep=True)
    engine = MattingEngine(ctx.store, MattingOptions(model=str(model)))
    try:
        prepare = engine._current().fresh_input
        with ctx.timed("copy"):
            # Speed is not the point here (a tiny model gains nothing): the copy must be made and hold.
            verdict = int8.build_copy(model, ctx.scratch / "int8" / "copy.onnx", prepare, min_speedup=0.0)
    finally:
        engine.close()
    if not verdict.used:
        raise CheckFailed(f"The 8-bit copy of a test model was not usable: {verdict.reason}.")
    return f"The 8-bit copy of a 512 px test model was made and checked (mask IoU {verdict.iou_min:.3f} at worst)."


# ---- voice assistant ----------------------------------------------------------------------------


def _phrase(ctx: _Context) -> tuple[np.ndarray, int]:
    spoken = ctx.values.get("phrase")
    if spoken is None:
        raise Skipped("Not run: it listens to the phrase the Piper voice speaks, which failed.")
    return spoken


def _to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    from workers.media.audio import resample

    return resample(np.asarray(audio, np.float32)[:, None], rate, 16000)[:, 0]


def check_piper(ctx: _Context) -> str:
    from workers.assistant.tts import PiperTTS, render

    with ctx.timed("load"):
        voice = PiperTTS(store=ctx.store, device="cpu")
    voice.varied = False  # the same sound on every run, so that the checks after it hear the same phrase
    with ctx.timed("speak"):
        audio = render(voice, PHRASE)
    seconds = len(audio) / voice.sample_rate
    if seconds < 0.5 or float(np.abs(audio).max(initial=0.0)) < 0.01:
        raise CheckFailed("The Piper voice produced silence instead of speech.")
    ctx.values["phrase"] = (audio, voice.sample_rate)
    return f"{voice.name} spoke {seconds:.1f} s of speech at {voice.sample_rate} Hz."


def check_vad(ctx: _Context) -> str:
    from workers.assistant.vad import FRAME_SAMPLES, SileroVAD

    audio, rate = _phrase(ctx)
    speech = _to_16k(audio, rate)
    lead = np.zeros(16000, np.float32)
    clip = np.concatenate([lead, speech * 0.5, np.zeros(16000, np.float32)])
    with ctx.timed("load"):
        vad = SileroVAD(store=ctx.store)
    with ctx.timed("run"):
        probs = vad.probs(clip)
    frames_lead = len(lead) // FRAME_SAMPLES
    silence = float(probs[: frames_lead - 2].max(initial=0.0))
    voiced = np.flatnonzero(probs >= 0.5)
    if len(voiced) == 0 or silence >= 0.5:
        raise CheckFailed(f"Silero VAD did not tell the speech from the silence (peak in silence {silence:.2f}).")
    start = voiced[0] * FRAME_SAMPLES / 16000 - 1.0
    ctx.values["speech16k"] = speech
    return f"speech found {start * 1000:+.0f} ms from where it starts ({len(voiced)} of {len(probs)} frames voiced)."


def missed_words(said: str, heard: str) -> list[str]:
    """The words of ``said`` that ``heard`` lacks (case and punctuation aside)."""

    def words(text: str) -> list[str]:
        return re.findall(r"[a-z0-9']+", text.lower())

    got = set(words(heard))
    return [word for word in words(said) if word not in got]


def check_whisper(ctx: _Context) -> str:
    from workers.assistant.asr import Transcriber

    audio, rate = _phrase(ctx)
    speech = ctx.values.get("speech16k")
    if speech is None:
        speech = _to_16k(audio, rate)
    with ctx.timed("load"):
        transcriber = Transcriber(store=ctx.store, warmup=False, beam_size=CHECK_BEAM)
    with ctx.timed("run"):
        text = transcriber.transcribe(np.concatenate([np.zeros(4000, np.float32), speech])).text.strip()
    missed = missed_words(PHRASE, text)
    if len(missed) > 1:
        raise CheckFailed(f"Whisper heard {text!r} instead of {PHRASE!r}.")
    if missed:
        ctx.note = f"One word was misheard ({missed[0]!r}); the language model is asked the phrase itself."
    else:
        ctx.values["heard"] = text
    return f"{transcriber.name} on {transcriber.device} ({transcriber.compute_type}) heard {text!r}."


def check_llm(ctx: _Context) -> str:
    from workers.assistant import gguf_convert
    from workers.assistant.llm import SHIPPED_GEMMA_ID, ChatMessage, load_language_model, resolve_model_path
    from workers.assistant.options import AssistantOptions

    options = AssistantOptions()
    options.llm_model = SHIPPED_GEMMA_ID
    options.max_new_tokens = 24
    with ctx.timed("prepare"):
        gguf = resolve_model_path(SHIPPED_GEMMA_ID, ctx.store)
        folder = gguf_convert.converted_dir(ctx.store.root, gguf)
        fresh = not gguf_convert.is_converted(folder)
        gguf_convert.ensure_converted(gguf, ctx.store.root)
    if fresh:
        ctx.note = f"The shipped Gemma was prepared once in the model store ({folder})."
    with ctx.timed("load"):
        model = load_language_model(options, store=ctx.store, device="auto")
    try:
        question = ctx.values.get("heard") or PHRASE
        messages = [ChatMessage("system", options.system_prompt), ChatMessage("user", question)]
        with ctx.timed("reply"):
            answer = "".join(model.stream(messages, max_new_tokens=options.max_new_tokens, temperature=0.0)).strip()
    finally:
        model.close()
    if not answer:
        raise CheckFailed(f"{model.name} gave an empty answer.")
    short = answer if len(answer) <= 80 else answer[:77] + "..."
    return f"{model.name} answered {short!r}."


# ---- voice conversion ---------------------------------------------------------------------------


def check_dsp(ctx: _Context) -> str:
    from workers.voice_conversion.dsp import DSPVoiceChanger
    from workers.voice_conversion.realtime import BlockConverter

    tone = voice_like_tone()
    with ctx.timed("load"):
        changer = DSPVoiceChanger(VC_RATE, pitch=SHIFT_SEMITONES)
        blocks = BlockConverter(
            changer, samplerate=VC_RATE, block_seconds=0.1, crossfade_seconds=0.05, extra_seconds=0.2
        )
    size = int(0.1 * VC_RATE)
    out = []
    per_block = []
    with ctx.timed("run"):
        for i in range(0, len(tone) - size + 1, size):
            t0 = time.perf_counter()
            out.append(blocks.process(tone[i : i + size]))
            per_block.append((time.perf_counter() - t0) * 1000.0)
    converted = np.concatenate(out)
    if converted.shape != (len(out) * size,) or not np.all(np.isfinite(converted)):
        raise CheckFailed("The voice changer returned blocks of the wrong length or with invalid samples.")
    if float(np.abs(converted[len(converted) // 2 :]).max(initial=0.0)) < 0.01:
        raise CheckFailed("The voice changer returned silence.")
    ctx.values["tone"] = tone
    ctx.values["converted"] = converted
    ctx.timings["block"] = round(float(np.median(per_block)), 1)
    return (
        f"{len(out)} blocks of 100 ms shifted by {SHIFT_SEMITONES:+.0f} semitones "
        f"(median {np.median(per_block):.1f} ms per block)."
    )


def _pitch_check(ctx: _Context, method: str, label: str) -> str:
    from workers.voice_conversion.pitch import make_pitch_estimator, voiced_median

    tone = ctx.values.get("tone")
    if tone is None:
        tone = voice_like_tone()
    with ctx.timed("load"):
        estimator = make_pitch_estimator(method, device="cpu")
    steady = _to_16k(tone[int(0.3 * VC_RATE) :], VC_RATE)
    with ctx.timed("run"):
        measured = voiced_median(estimator(steady))
    if not abs(measured - TONE_HZ) <= TONE_HZ * 0.03:
        raise CheckFailed(f"{label} measured {measured:.1f} Hz on a {TONE_HZ:.0f} Hz tone.")
    text = f"{label} measured the {TONE_HZ:.0f} Hz test tone as {measured:.1f} Hz"
    converted = ctx.values.get("converted")
    if converted is not None:
        shifted = voiced_median(estimator(_to_16k(converted[int(0.5 * VC_RATE) :], VC_RATE)))
        expected = TONE_HZ * 2.0 ** (SHIFT_SEMITONES / 12.0)
        if not abs(shifted - expected) <= expected * 0.03:
            raise CheckFailed(
                f"{label} measured the changed voice at {shifted:.1f} Hz where {expected:.1f} Hz was expected."
            )
        text += f" and the changed voice as {shifted:.1f} Hz (expected {expected:.1f})"
    return text + "."


def check_fcpe(ctx: _Context) -> str:
    return _pitch_check(ctx, "fcpe", "FCPE")


def check_crepe_tiny(ctx: _Context) -> str:
    return _pitch_check(ctx, "crepe-tiny", "CREPE tiny")


#: (tool, check name, function), in the order they run.
CHECKS: list[tuple[str, str, Check]] = [
    ("face swap", "classic engine (dlib)", check_face_classic),
    ("face swap", "InsightFace engine", check_face_insightface),
    ("background removal", "matting engine", check_matting),
    ("background removal", "8-bit copy", check_matting_int8),
    ("voice assistant", "Piper voice", check_piper),
    ("voice assistant", "Silero VAD", check_vad),
    ("voice assistant", "Whisper", check_whisper),
    ("voice assistant", "Gemma 3 270M", check_llm),
    ("voice conversion", "DSP voice changer", check_dsp),
    ("voice conversion", "FCPE pitch", check_fcpe),
    ("voice conversion", "CREPE tiny pitch", check_crepe_tiny),
]


# ---- running --------------------------------------------------------------------------------------


def studio_version() -> str:
    try:
        return metadata.version("snowai-studio")
    except Exception:
        return "(version unknown)"


def _versions() -> dict[str, str]:
    found = {}
    for name in VERSION_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        except Exception:  # damaged metadata must not stop the self-test
            found[name] = "?"
    return found


def _sentence(text: str) -> str:
    line = " ".join(str(text).split())
    return line if line.endswith((".", "!", "?", ")")) else line + "."


def run_check(tool: str, name: str, func: Check, ctx: _Context) -> CheckResult:
    """Run one check; a failure becomes one sentence (the traceback goes to the log)."""
    ctx.timings, ctx.note = {}, ""
    t0 = time.perf_counter()
    # Libraries' warnings and progress bars stay off the report (they go to the log).
    chatter = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
        warnings.simplefilter("ignore")
        try:
            message, status = func(ctx), PASS
        except Skipped as exc:
            message, status = str(exc), SKIP
        except Exception as exc:
            if not isinstance(exc, UserError):
                log.exception("self-test check %s / %s failed", tool, name)
            else:
                log.warning("self-test check %s / %s failed: %s", tool, name, exc)
            message, status = describe_exception(exc), FAIL
    ms = round((time.perf_counter() - t0) * 1000.0, 1)
    if chatter.getvalue().strip():
        log.info("output of the self-test check %s / %s: %s", tool, name, chatter.getvalue().strip()[-2000:])
    return CheckResult(tool, name, status, ms, _sentence(message), dict(ctx.timings), ctx.note)


def run_self_test(
    store: ModelStore | None = None,
    *,
    only: Sequence[str] | None = None,
    version: str | None = None,
    on_start: Callable[[Report], None] | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> Report:
    """Run the checks (those whose tool or name is in ``only``, or all) against ``store``
    (default: the model store in the settings). ``on_start`` gets the report before the first
    check (device and versions filled in), ``on_result`` each result as it comes."""
    from workers import compute

    started = time.perf_counter()
    store_error = None
    if store is None:
        try:
            from workers.models.store import ModelStore
            from workers.settings import Settings

            store = ModelStore(Settings.load().models_dir())
        except Exception as exc:
            store_error = describe_exception(exc, "The model store could not be opened")
    try:
        info = compute.probe()
        device, runtimes = info.label(), dict(info.runtimes)
    except Exception as exc:
        device, runtimes = describe_exception(exc, "The compute probe failed"), {}
    report = Report(
        version=version or studio_version(),
        frozen=bool(getattr(sys, "frozen", False)),
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        device=device,
        runtimes=runtimes,
        versions=_versions(),
        store=str(store.root) if store is not None else "",
    )
    if on_start is not None:
        on_start(report)
    wanted = {w.lower() for w in only} if only else None
    with tempfile.TemporaryDirectory(prefix="snowai-selftest-") as scratch:
        ctx = _Context(store, Path(scratch)) if store is not None else None
        for tool, name, func in CHECKS:
            if wanted is not None and tool.lower() not in wanted and name.lower() not in wanted:
                continue
            if ctx is None:
                result = CheckResult(tool, name, FAIL, 0.0, _sentence(store_error or "No model store."))
            else:
                result = run_check(tool, name, func, ctx)
            report.checks.append(result)
            if on_result is not None:
                on_result(result)
    report.ms = round((time.perf_counter() - started) * 1000.0, 1)
    return report


# ---- printing -------------------------------------------------------------------------------------


def header_lines(report: Report) -> list[str]:
    where = "bundle" if report.frozen else "Python"
    runtimes = "; ".join(f"{k} {v}" for k, v in report.runtimes.items()) or "none found"
    versions = ", ".join(f"{k} {v}" for k, v in report.versions.items())
    return [
        f"SnowAI Studio {report.version} self-test ({where}, Python {report.python}, {report.platform})",
        f"device    {report.device}",
        f"runtimes  {runtimes}",
        f"versions  {versions}",
        f"models    {report.store}",
        "",
    ]


def result_line(result: CheckResult) -> str:
    stages = ", ".join(f"{k} {v:.0f}" for k, v in result.timings.items())
    head = f"{result.status.upper():<4}  {result.tool + ' · ' + result.name:<42} {result.ms:>8.0f} ms"
    line = f"{head}  {result.message}"
    if stages:
        line += f" [{stages} ms]"
    if result.note:
        line += f" Note: {result.note}"
    return line


def verdict_line(report: Report) -> str:
    n = report.counts()
    seconds = report.ms / 1000.0
    skipped = f", {n[SKIP]} skipped" if n[SKIP] else ""
    if report.ok:
        return f"Verdict: PASS ({n[PASS]} passed{skipped}; {seconds:.1f} s)."
    return f"Verdict: FAIL ({n[FAIL]} failed, {n[PASS]} passed{skipped}; {seconds:.1f} s)."


def format_report(report: Report) -> str:
    lines = header_lines(report) + [result_line(c) for c in report.checks] + ["", verdict_line(report)]
    return "\n".join(lines)


def run_cli(
    *,
    json_output: bool = False,
    only: Sequence[str] | None = None,
    version: str | None = None,
    store: ModelStore | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the self-test and print it (each line as its check finishes, or JSON at the end);
    returns 0 when every check passed (or was skipped), 1 otherwise."""
    stream = out or sys.stdout

    def write(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    if json_output:
        report = run_self_test(store, only=only, version=version)
        write(json.dumps(report.to_dict(), indent=2))
    else:
        report = run_self_test(
            store,
            only=only,
            version=version,
            on_start=lambda r: write("\n".join(header_lines(r))),
            on_result=lambda c: write(result_line(c)),
        )
        write("\n" + verdict_line(report))
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="snowai-studio --self-test", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--only", action="append", help="run only this tool or check (repeatable)")
    args = parser.parse_args(argv)
    return run_cli(json_output=args.json, only=args.only)


if __name__ == "__main__":
    raise SystemExit(main())
