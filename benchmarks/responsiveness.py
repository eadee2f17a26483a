"""Responsiveness and soak: how late the studio's event loop runs while the live tools work.

    python benchmarks/responsiveness.py [--tools face_swap,matting,assistant,voice_conversion]
        [--seconds 30] [--all-at-once] [--soak MINUTES] [--json benchmarks/results/responsiveness.json]

The real main window (every dock, the notifications panel, the status bar) runs on the platform Qt
gives it (offscreen when there is no display; run under ``xvfb-run`` for a real X server) with fake
devices injected through the window's extras, and real models:

- ``face_swap``: live face swap with the classic engine (dlib's HOG detector, 68 landmarks and
  descriptor, shipped in face-recognition-models) onto a looping 640x480, 30 fps video of a face that
  moves a little (the astronaut photo of the face-swap tests), the source face a different-looking
  photo;
- ``matting``: live background removal on the same video with a U²-Net-shaped ONNX model built here
  (the compute of a real network: a stack of 3x3 convolutions at 320x320; none ships on PyPI), or the
  first matting model installed in the store given with ``--store``;
- ``assistant``: the voice assistant listening to a microphone that plays three questions spoken by
  the shipped Piper voice in a loop (8 s apart), answered by the shipped Whisper tiny.en, Gemma 3 270M
  and Piper into a speaker that plays at real-time pace;
- ``voice_conversion``: live voice conversion with the built-in voice changer (or, with
  ``--svc-model tiny``, the tests' tiny so-vits-svc 4.1 checkpoint) from a looping spoken sentence to
  the paced speaker.

An event-loop probe (a precise 10 ms QTimer) measures how late each of its ticks comes: the p50 / p99
/ max stall in ms while the tool runs (after its warm-up: models loaded, the first results shown).
Beside it: frames or blocks the workers processed and dropped (from their counters and ``stats``),
frames painted, the process's resident memory (psutil RSS) at the start and the end, and its growth.
Targets: p99 stall < 50 ms while any worker runs; memory growth < 5 % over a 30-minute soak.

``--soak MINUTES`` runs the chosen tools together for that long, sampling RSS every
``--sample-every`` seconds; it reports the growth from the end of the warm-up (``--soak-warmup``
seconds) to the end, and the slope (MB per hour, least squares). ``--all-at-once`` runs the tools of a
short run together instead of one after the other. Nothing is downloaded; the settings, the model
store and the files live in a temporary folder unless ``--store`` names a store to reuse (the
converted Gemma is then kept between runs).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

TOOLS = ("face_swap", "matting", "assistant", "voice_conversion")
TOOL_LABELS = {
    "face_swap": "Face swap (classic)",
    "matting": "Background removal",
    "assistant": "Voice assistant",
    "voice_conversion": "Voice conversion",
}
DEVICE_RATE = 48000
DEVICE_BLOCK = 1024
TARGET_P99_MS = 50.0
TARGET_GROWTH_PCT = 5.0
QUESTIONS = (
    "What is the capital of France?",
    "How many minutes are there in one hour?",
    "Please tell me a short joke about cats.",
)


# ---- the probe ---------------------------------------------------------------------------------------------


class StallProbe:
    """A precise QTimer firing every ``interval_ms`` on the UI thread; each tick records how much later
    than due it came (the time the event loop was busy elsewhere), in a fixed histogram (0.1 ms bins up
    to ``span_ms``; the exact maximum is kept), so that hours of ticks take no more memory."""

    BIN_MS = 0.1

    def __init__(self, interval_ms: int = 10, span_ms: float = 2000.0) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.interval_ms = int(interval_ms)
        self._bins = np.zeros(int(span_ms / self.BIN_MS) + 1, np.int64)
        self._max = 0.0
        self._ticks = 0
        self._last: float | None = None
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(self.interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = None
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._last = None

    def reset(self) -> None:
        """Forget the ticks so far (the next tick starts a new measurement)."""
        self._bins[:] = 0
        self._max = 0.0
        self._ticks = 0
        self._last = None

    def _tick(self) -> None:
        now = time.perf_counter()
        last, self._last = self._last, now
        if last is None:
            return
        late = max(0.0, (now - last) * 1000.0 - self.interval_ms)
        self._ticks += 1
        self._max = max(self._max, late)
        self._bins[min(len(self._bins) - 1, int(late / self.BIN_MS))] += 1

    @property
    def ticks(self) -> int:
        return self._ticks

    def percentile(self, q: float) -> float:
        if not self._ticks:
            return 0.0
        rank = q / 100.0 * self._ticks
        index = int(np.searchsorted(np.cumsum(self._bins), max(1.0, rank)))
        if index >= len(self._bins) - 1:
            return self._max
        return min(self._max, (index + 1) * self.BIN_MS)  # the bin's upper edge: never flatters

    def over(self, ms: float) -> int:
        """Ticks later than ``ms``."""
        return int(self._bins[int(ms / self.BIN_MS) + 1 :].sum()) if self._ticks else 0

    def summary(self) -> dict[str, Any]:
        return {
            "ticks": self._ticks,
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(self._max, 1),
            "over_50ms": self.over(50.0),
            "over_250ms": self.over(250.0),
        }


class StallTracer:
    """Where the UI thread is while the event loop runs late (``--trace-stalls``): a thread of its own
    samples the UI thread's Python stack every ``every_ms`` while the probe's next tick is more than
    ``threshold_ms`` overdue, and counts the samples per innermost studio frame. A stall with no studio
    frame in the stack was spent in Qt (painting, layout), in a library's native code, or waiting for
    the GIL that a worker thread held."""

    def __init__(self, probe: StallProbe, threshold_ms: float = 25.0, every_ms: float = 5.0) -> None:
        self.probe = probe
        self.threshold = threshold_ms / 1000.0
        self.every = every_ms / 1000.0
        self.counts: dict[str, int] = {}
        self.samples = 0
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stall tracer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def _run(self) -> None:
        interval = self.probe.interval_ms / 1000.0
        while not self._stop.wait(self.every):
            last = self.probe._last
            if last is None or time.perf_counter() - last - interval < self.threshold:
                continue
            frame = sys._current_frames().get(self._main)
            key = self._where(frame)
            self.counts[key] = self.counts.get(key, 0) + 1
            self.samples += 1

    @staticmethod
    def _where(frame: Any) -> str:
        inner = []
        while frame is not None and len(inner) < 40:
            code = frame.f_code
            inner.append(f"{Path(code.co_filename).name}:{code.co_name}:{frame.f_lineno}")
            frame = frame.f_back
        ours = [f for f in inner if not f.startswith(("responsiveness.py", "threading.py"))]
        return " < ".join(ours[:3]) if ours else "the event loop itself (Qt, native code or the GIL)"

    def top(self, n: int = 12) -> list[tuple[str, int]]:
        return sorted(self.counts.items(), key=lambda kv: -kv[1])[:n]


class Devices:
    """The camera, microphone and speaker factories injected into the window, and what they made."""

    def __init__(self, video: Path, voice: np.ndarray, voice_rate: int) -> None:
        self.video = video
        self.voice = voice
        self.voice_rate = voice_rate
        self.cameras: list[Any] = []
        self.microphones: list[Any] = []
        self.speakers: list[Any] = []

    def camera(self) -> Any:
        from workers.media.fakes import VideoFileCamera

        camera = VideoFileCamera(self.video, loop=True, paced=True)
        self.cameras = [*self.cameras[-7:], camera]  # keep a few for the checks, not all of them
        return camera

    def microphone(self) -> Any:
        from workers.media.fakes import ArrayMicrophone

        mic = ArrayMicrophone(
            self.voice, self.voice_rate, DEVICE_RATE, DEVICE_BLOCK, paced=True, loop=True, label="Looping questions"
        )
        self.microphones = [*self.microphones[-7:], mic]
        return mic

    def speaker(self) -> Any:
        from workers.media.fakes import PacedSpeaker

        # paced like a sound card, keeping nothing: hours of output take no memory
        speaker = PacedSpeaker(DEVICE_RATE, 1, buffer_seconds=0.1, keep=False)
        self.speakers = [*self.speakers[-7:], speaker]
        return speaker

    def extras(self) -> dict[str, Any]:
        return {
            "camera_factory": self.camera,
            "microphone_factory": self.microphone,
            "speaker_factory": self.speaker,
            "face_swap_consent": lambda _parent: True,
            "face_swap_confirm_mark_off": lambda _parent: True,
        }


# ---- media and models built here ---------------------------------------------------------------------------


def face_video(path: Path, width: int = 640, height: int = 480, fps: int = 30, frames: int = 90) -> Path:
    """An MP4 of the astronaut's face moving in a slow circle (it loops without a jump)."""
    import av
    from face_fixtures import moving_frames

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, (frame, _shift) in enumerate(moving_frames(frames, width, height)):
            vf = av.VideoFrame.from_ndarray(frame, format="bgr24")
            vf.pts = i
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    return path


def source_photo(path: Path) -> Path:
    """The face-swap source: a face that looks different from the astronaut's."""
    import cv2
    from face_fixtures import second_face

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), second_face())
    return path


def spoken_questions(gap_seconds: float = 8.0) -> tuple[np.ndarray, int]:
    """The three questions spoken by the shipped Piper voice, each followed by ``gap_seconds`` of silence."""
    from assistant_fixtures import padded, speech

    parts = []
    rate = 22050
    for text in QUESTIONS:
        audio, rate = speech(text)
        parts.append(padded(np.asarray(audio) * 0.6, rate, 0.5, gap_seconds))
    return np.concatenate(parts).astype(np.float32), rate


def matting_model(store: Any, folder: Path) -> str:
    """The id of the matting model to use: the first installed one, else a U²-Net-shaped one built here."""
    from workers.models.store import Status

    for model in store.models():
        if model.tool == "matting" and store.state(model.id).status is Status.INSTALLED:
            return model.id
    from matting import build_conv_stack

    folder.mkdir(parents=True, exist_ok=True)
    path = build_conv_stack(folder / "u2net-shaped.onnx")
    return store.import_file(path, "matting", name="U2-Net-shaped benchmark model").id


class ScriptedLLM:
    """A language model that streams a fixed answer word by word (``--llm scripted``): the assistant's
    speech parts stay real while the language model costs nothing."""

    name = "Scripted answer"
    backend = "test"
    note = ""

    def __init__(self, answer: str = "The answer is short. It comes in two sentences.", delay: float = 0.03) -> None:
        self.answer = answer
        self.delay = delay

    def stream(self, messages: Any, *, max_new_tokens: int = 120, temperature: float = 0.7, cancel: Any = None) -> Any:
        for word in self.answer.split(" "):
            if cancel is not None and cancel():
                return
            time.sleep(self.delay)
            yield word + " "

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def close(self) -> None:
        pass


def scripted_components(options: Any, **kw: Any) -> Any:
    """An ``assistant_components_factory``: the shipped Silero VAD, Whisper tiny.en and Piper voice with
    a :class:`ScriptedLLM`."""
    from workers.assistant.asr import Transcriber
    from workers.assistant.pipeline import Components
    from workers.assistant.tts import PiperTTS
    from workers.assistant.vad import SileroVAD

    store = kw.get("store")
    asr = Transcriber(store=store, device="cpu")
    return Components(SileroVAD(store=store), asr, ScriptedLLM(), PiperTTS(store=store))


# ---- waiting with a live event loop ------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float, poll_ms: int = 50) -> bool:
    """Run the event loop until ``condition()`` is true or ``timeout`` seconds pass; returns the condition."""
    from PySide6.QtCore import QEventLoop, QTimer

    if condition():
        return True
    loop = QEventLoop()
    end = time.monotonic() + timeout

    def check() -> None:
        if condition() or time.monotonic() >= end:
            loop.quit()

    timer = QTimer()
    timer.setInterval(poll_ms)
    timer.timeout.connect(check)
    timer.start()
    loop.exec()
    timer.stop()
    return bool(condition())


def spin(seconds: float) -> None:
    """Run the event loop for ``seconds``."""
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= end, seconds + 1.0)


def limit_malloc_arenas(n: int) -> bool:
    """``mallopt(M_ARENA_MAX, n)`` on glibc (before threads start): fewer per-thread heaps keep less freed
    memory around. Returns False where there is no glibc."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-8, int(n)))  # M_ARENA_MAX
    except (OSError, AttributeError):
        return False


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def native_threads() -> int:
    import psutil

    return psutil.Process().num_threads()


def census() -> dict[str, int]:
    """How many Python objects of each type live now, and how many Qt widgets (``--census``: what grows)."""
    from PySide6.QtWidgets import QApplication

    gc.collect()
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        counts[name] = counts.get(name, 0) + 1
    counts["<Qt widgets>"] = len(QApplication.allWidgets())
    return counts


def census_growth(before: dict[str, int], after: dict[str, int], n: int = 15) -> list[tuple[str, int]]:
    grown = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)}
    return sorted(((k, v) for k, v in grown.items() if v > 0), key=lambda kv: -kv[1])[:n]


# ---- the tools in the window -------------------------------------------------------------------------------


class ToolRun:
    """Drives one tool's dock in the window: start (and wait until it really works), counters, stop."""

    tool = ""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.dock = studio.dock(self.tool)
        self.error = ""

    def prepare(self, timeout: float) -> None:
        """One-time setup (a source face, a model) before the first start."""

    def start(self) -> bool:
        raise NotImplementedError

    def warmed(self) -> bool:
        """True once the tool shows results (models loaded, first frames or blocks through)."""
        raise NotImplementedError

    def counters(self) -> dict[str, float]:
        """Monotonic counters: ``processed``, ``dropped`` and what else the tool has."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def running(self) -> bool:
        raise NotImplementedError

    def messages(self) -> str:
        return str(getattr(self.dock, "last_message", "") or "")


class FaceSwapRun(ToolRun):
    tool = "face_swap"

    def prepare(self, timeout: float) -> None:
        dock = self.dock
        done: list[bool] = []
        dock.job_done.connect(lambda kind, ok: done.append(ok) if kind == "source" else None)
        if dock.choose_source([self.studio.source_photo]) is None:
            raise RuntimeError(f"face swap: the source face was refused: {dock.last_message}")
        if not wait_until(lambda: bool(done), timeout) or not done[-1]:
            raise RuntimeError(f"face swap: the source face did not load: {dock.last_message}")

    def start(self) -> bool:
        self.dock.preview.clear()
        return bool(self.dock.start_live())

    def warmed(self) -> bool:
        worker = self.dock.worker
        return worker is not None and worker.processed >= 5 and self.dock.preview.frames_shown >= 3

    def counters(self) -> dict[str, float]:
        worker, camera = self.dock.worker, self.dock.camera
        return {
            "processed": float(worker.processed if worker else 0),
            "dropped": float(worker.dropped if worker else 0),
            "camera_frames": float(camera.frames if camera else 0),
            "painted": float(self.dock.preview.frames_shown),
        }

    def stop(self) -> None:
        self.dock.stop_live()

    def running(self) -> bool:
        return bool(self.dock.live_running)


class MattingRun(ToolRun):
    tool = "matting"

    def prepare(self, timeout: float) -> None:
        dock = self.dock
        dock.refresh_models()
        choice = dock.current_choice()
        if choice is None or not choice.ready:
            raise RuntimeError(f"background removal: no model is ready: {dock.model_status.text()}")

    def start(self) -> bool:
        return bool(self.dock.start_live())

    def warmed(self) -> bool:
        worker = self.dock._matting
        return worker is not None and worker.processed >= 3 and self.dock.live_view.frames_shown >= 3

    def counters(self) -> dict[str, float]:
        worker, camera = self.dock._matting, self.dock._camera
        return {
            "processed": float(worker.processed if worker else 0),
            "dropped": float(worker.dropped if worker else 0),
            "camera_frames": float(camera.frames if camera else 0),
            "painted": float(self.dock.live_view.frames_shown),
        }

    def stop(self) -> None:
        self.dock.stop_live()

    def running(self) -> bool:
        return bool(self.dock.live_running)


class AssistantRun(ToolRun):
    tool = "assistant"

    def start(self) -> bool:
        return bool(self.dock.start_listening())

    def warmed(self) -> bool:
        return bool(self.dock.ready) and self._count("level") > 0

    def _count(self, kind: str) -> int:
        worker = self.dock.worker
        return int(worker.relayed.get(kind, 0)) if worker is not None else 0

    def counters(self) -> dict[str, float]:
        mics = self.studio.devices.microphones
        return {
            "processed": float(self._count("user")),  # questions heard
            "answered": float(self._count("done")),
            "dropped": 0.0,
            "mic_blocks": float(sum(m._seq for m in mics)),
            "events": float(sum((self.dock.worker.relayed if self.dock.worker else {}).values())),
        }

    def stop(self) -> None:
        self.dock.stop_listening()
        self.dock.interrupt()

    def running(self) -> bool:
        return bool(self.dock.listening)


class VoiceConversionRun(ToolRun):
    tool = "voice_conversion"

    def __init__(self, studio: Studio) -> None:
        super().__init__(studio)
        self._stale: dict[str, Any] | None = None

    def _stats(self) -> dict[str, Any]:
        worker = self.dock.worker
        return worker.latest_stats() if worker is not None else {}

    def prepare(self, timeout: float) -> None:
        model = self.studio.svc_model
        if model:
            done: list[dict] = []
            self.dock.model_changed.connect(done.append)
            self.dock.set_model(str(model))
            if not wait_until(lambda: bool(done), timeout):
                raise RuntimeError(f"voice conversion: the model did not load: {self.dock.last_message}")

    def start(self) -> bool:
        self._stale = self._stats()  # the last session's numbers, until the new session reports
        return bool(self.dock.start_live())

    def warmed(self) -> bool:
        stats = self._stats()
        return bool(self.dock.live_running) and stats != self._stale and float(stats.get("blocks", 0)) >= 3

    def counters(self) -> dict[str, float]:
        stats = self._stats()
        return {"processed": float(stats.get("blocks", 0)), "dropped": float(stats.get("dropped", 0))}

    def stop(self) -> None:
        self.dock.stop_live()

    def running(self) -> bool:
        return bool(self.dock.live_running)


RUNS: dict[str, type[ToolRun]] = {
    "face_swap": FaceSwapRun,
    "matting": MattingRun,
    "assistant": AssistantRun,
    "voice_conversion": VoiceConversionRun,
}


class Studio:
    """The main window with fake devices and the models above, in a folder of its own.

    ``components_factory`` replaces the assistant's model loader (the tests give it a scripted
    language model); the benchmark leaves it None (the shipped Whisper, Gemma and Piper).
    """

    def __init__(
        self,
        folder: Path,
        *,
        store_dir: Path | None = None,
        svc_model: str = "dsp",
        components_factory: Any = None,
        video_frames: int = 90,
        width: int = 640,
        height: int = 480,
        question_gap: float = 8.0,
    ) -> None:
        from snowai_studio.app import create_window
        from workers.settings import Settings

        self.folder = Path(folder)
        self.source_photo = source_photo(self.folder / "media" / "source-face.png")
        video = face_video(self.folder / "media" / "face.mp4", width, height, frames=video_frames)
        voice, rate = spoken_questions(question_gap)
        self.devices = Devices(video, voice, rate)
        if store_dir is not None:
            os.environ["SNOWAI_MODELS_DIR"] = str(store_dir)
        settings = Settings.load()
        settings.face_swap.consent_accepted = True
        extras = self.devices.extras()
        if components_factory is not None:
            extras["assistant_components_factory"] = components_factory
        self.window = create_window(settings, extras)
        if svc_model == "tiny":  # the store must hold the tests' tiny content encoder
            import svc_fixtures

            self.window.context.model_store = svc_fixtures.fixture_store(settings.models_dir())
        self.store = self.window.context.model_store
        self.svc_model = self._svc_model(svc_model)
        self.matting_id = matting_model(self.store, self.folder / "models-src")
        self.window.resize(1600, 1000)
        self.window.show()
        self.runs: dict[str, ToolRun] = {}

    def _svc_model(self, name: str) -> str:
        if name in ("", "dsp"):
            return ""
        if name == "tiny":
            import svc_fixtures

            gen, _config = svc_fixtures.make_sovits_checkpoint(self.folder / "tiny-sovits", version="4.1")
            return str(gen.parent)
        return name

    def dock(self, tool: str) -> Any:
        return self.window.pages[tool]

    def run(self, tool: str) -> ToolRun:
        if tool not in self.runs:
            self.runs[tool] = RUNS[tool](self)
        return self.runs[tool]

    def show_only(self, tools: list[str]) -> None:
        """Show the pages of ``tools`` so that they paint: the first in the window, the others each in a
        window of its own (View → Open in its own window)."""
        window = self.window
        for tool in window.pages:
            window.attach_page(tool)
        window.show_page(tools[0])
        for tool in tools[1:]:
            window.detach_page(tool)

    def close(self) -> None:
        from workers import base

        for run in self.runs.values():
            try:
                if run.running():
                    run.stop()
            except Exception:
                pass
        self.window.close()
        base.shutdown_all()
        self.window.notifications.uninstall_hooks()
        self.window.deleteLater()


# ---- measuring ---------------------------------------------------------------------------------------------


def start_and_warm(studio: Studio, tools: list[str], warmup_timeout: float) -> dict[str, ToolRun]:
    runs = {t: studio.run(t) for t in tools}
    for tool, run in runs.items():
        if not run.start():
            raise RuntimeError(f"{TOOL_LABELS[tool]} did not start: {run.messages()}")
    for tool, run in runs.items():
        if not wait_until(run.warmed, warmup_timeout):
            raise RuntimeError(f"{TOOL_LABELS[tool]} showed no results within {warmup_timeout:.0f} s: {run.messages()}")
    return runs


def measure(
    studio: Studio,
    tools: list[str],
    seconds: float,
    *,
    probe: StallProbe,
    warmup_timeout: float = 180.0,
    settle: float = 2.0,
    samples: list[tuple[float, float]] | None = None,
    sample_every: float = 5.0,
    progress: Callable[[str], None] | None = None,
    tracer: StallTracer | None = None,
    take_census: bool = False,
) -> dict[str, Any]:
    """Start ``tools`` together, wait for their warm-up, then probe the event loop for ``seconds``.

    Returns the stall summary, RSS at the start and the end (MB) and, per tool, the counters' growth
    over the measured span. ``samples`` (when given) receives (elapsed s, RSS MB) every ``sample_every`` s.
    """
    studio.show_only(tools)
    runs = start_and_warm(studio, tools, warmup_timeout)
    spin(settle)
    gc.collect()
    counted = census() if take_census else {}
    before = {t: r.counters() for t, r in runs.items()}
    rss_start = rss_mb()
    threads_start = native_threads()
    probe.reset()
    probe.start()
    if tracer is not None:
        tracer.start()
    t0 = time.monotonic()
    next_sample = 0.0
    next_note = 60.0
    stopped: list[str] = []
    while True:
        elapsed = time.monotonic() - t0
        if elapsed >= seconds:
            break
        if samples is not None and elapsed >= next_sample:
            samples.append((round(elapsed, 1), round(rss_mb(), 1)))
            next_sample += sample_every
        if progress is not None and elapsed >= next_note:
            s = probe.summary()
            progress(f"{elapsed / 60:.0f} min: RSS {rss_mb():.0f} MB, p99 {s['p99_ms']} ms, max {s['max_ms']} ms")
            next_note += 60.0
        stopped = [t for t, r in runs.items() if not r.running()]
        if stopped:
            break
        spin(min(1.0, seconds - elapsed))
    span = time.monotonic() - t0
    probe.stop()
    if tracer is not None:
        tracer.stop()
    after = {t: r.counters() for t, r in runs.items()}
    gc.collect()
    rss_end = rss_mb()
    objects_grown = census_growth(counted, census()) if take_census else []
    if samples is not None:
        samples.append((round(span, 1), round(rss_end, 1)))
    threads_end = native_threads()
    per_tool = {}
    for tool, run in runs.items():
        grown = {k: after[tool][k] - before[tool].get(k, 0.0) for k in after[tool]}
        grown["per_second"] = round(grown.get("processed", 0.0) / span, 2) if span else 0.0
        per_tool[tool] = {k: round(v, 2) for k, v in grown.items()}
        per_tool[tool]["message"] = run.messages()
    for run in runs.values():
        run.stop()
    wait_until(lambda: not any(r.running() for r in runs.values()), 10.0)
    spin(1.0)
    return {
        "tools": tools,
        "seconds": round(span, 1),
        "stopped_early": stopped,
        **probe.summary(),
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_growth_pct": round(100.0 * (rss_end - rss_start) / rss_start, 2) if rss_start else 0.0,
        "threads_start": threads_start,
        "threads_end": threads_end,
        "per_tool": per_tool,
        "census_growth": objects_grown,
    }


def soak_figures(samples: list[tuple[float, float]], warmup: float) -> dict[str, Any]:
    """Growth from the first sample after ``warmup`` seconds to the last one, and the slope after it."""
    kept = [(t, r) for t, r in samples if t >= warmup] or samples
    if len(kept) < 2:
        return {}
    t = np.array([s[0] for s in kept])
    r = np.array([s[1] for s in kept])
    slope_per_s = float(np.polyfit(t, r, 1)[0]) if np.ptp(t) > 0 else 0.0
    half = t >= (t[0] + t[-1]) / 2.0
    half_slope = float(np.polyfit(t[half], r[half], 1)[0]) if half.sum() >= 2 and np.ptp(t[half]) > 0 else 0.0
    r_half = r[half]
    return {
        "warmup_s": warmup,
        "growth_second_half_pct": round(float(100.0 * (r_half[-1] - r_half[0]) / r_half[0]), 2),
        "slope_second_half_mb_per_hour": round(half_slope * 3600.0, 1),
        "rss_after_warmup_mb": round(float(r[0]), 1),
        "rss_final_mb": round(float(r[-1]), 1),
        "rss_min_mb": round(float(r.min()), 1),
        "rss_max_mb": round(float(r.max()), 1),
        "growth_after_warmup_pct": round(float(100.0 * (r[-1] - r[0]) / r[0]), 2),
        "slope_mb_per_hour": round(slope_per_s * 3600.0, 1),
    }


# ---- the report --------------------------------------------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    """One line per run (stalls, memory), then one per tool in it (frames or blocks through and dropped)."""
    header = (
        f"{'run':<44} {'s':>5} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'>50ms':>6} "
        f"{'RSS start':>9} {'RSS end':>8} {'growth':>7} {'p99<50':>6}"
    )
    tool_header = f"  {'tool':<42} {'processed':>10} {'per s':>7} {'dropped':>8}  note"
    lines = [header, tool_header, "-" * len(header)]
    for row in rows:
        label = " + ".join(TOOL_LABELS[t] for t in row["tools"])
        if "error" in row:
            lines.append(f"{label:<44} error: {row['error']}")
            continue
        ok = row["p99_ms"] < TARGET_P99_MS
        if len(row["tools"]) > 1:
            label = "all at once" if len(row["tools"]) == len(TOOLS) else " + ".join(row["tools"])
        stalls = f"{row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} {row['max_ms']:>7.1f} {row['over_50ms']:>6}"
        memory = f"{row['rss_start_mb']:>8.0f}M {row['rss_end_mb']:>7.0f}M {row['rss_growth_pct']:>6.1f}%"
        lines.append(f"{label[:44]:<44} {row['seconds']:>5.0f} {stalls} {memory} {'yes' if ok else 'no':>6}")
        for tool in row["tools"]:
            c = row["per_tool"][tool]
            note = ""
            if tool == "assistant":
                note = f"{c.get('answered', 0):.0f} answered, {c.get('mic_blocks', 0):.0f} microphone blocks"
            elif "camera_frames" in c:
                note = f"{c['camera_frames']:.0f} camera frames, {c.get('painted', 0):.0f} painted"
            lines.append(
                f"  {TOOL_LABELS[tool]:<42} {c.get('processed', 0):>10.0f} {c.get('per_second', 0):>7.1f} "
                f"{c.get('dropped', 0):>8.0f}  {note}"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated: " + ", ".join(TOOLS))
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per tool (after warm-up)")
    parser.add_argument("--all-at-once", action="store_true", help="run the tools together, not one after another")
    parser.add_argument("--soak", type=float, default=0.0, metavar="MINUTES", help="one run of the tools together")
    parser.add_argument("--soak-warmup", type=float, default=120.0, help="seconds of a soak not counted in its growth")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples in a soak")
    parser.add_argument("--interval", type=int, default=10, help="probe timer interval in ms")
    parser.add_argument("--svc-model", default="dsp", help="dsp (built-in voice changer), tiny, or a model path/id")
    parser.add_argument("--store", type=Path, default=None, help="a model store to use (default: a temporary one)")
    parser.add_argument(
        "--llm", choices=("shipped", "scripted"), default="shipped",
        help="the assistant's language model: the shipped Gemma, or a scripted answer (no model)",
    )
    parser.add_argument("--warmup-timeout", type=float, default=240.0)
    parser.add_argument("--trace-stalls", action="store_true", help="sample the UI thread's stack while it is late")
    parser.add_argument("--census", action="store_true", help="count Python objects and Qt widgets before and after")
    parser.add_argument(
        "--transcript-turns", type=int, default=0,
        help="turns the assistant's transcript shows at most (default: the dock's own limit)",
    )
    parser.add_argument("--switch-interval", type=float, default=0.0, help="Python's GIL switch interval in ms")
    parser.add_argument(
        "--malloc-arenas", type=int, default=0,
        help="glibc's malloc arenas at most (mallopt M_ARENA_MAX at start; Linux only; default: glibc's 8 per core)",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "responsiveness.json")
    args = parser.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown or not tools:
        parser.error(f"unknown tools {unknown}; choose from {', '.join(TOOLS)}")

    tmp = tempfile.TemporaryDirectory(prefix="snowai-responsiveness-")
    folder = Path(tmp.name)
    os.environ["SNOWAI_HOME"] = str(folder / "home")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from common import machine, write_results
    from PySide6.QtWidgets import QApplication

    from workers.logs import setup_logging

    setup_logging()
    if args.malloc_arenas > 0:
        limit_malloc_arenas(args.malloc_arenas)
    if args.switch_interval > 0:
        sys.setswitchinterval(args.switch_interval / 1000.0)
    if args.transcript_turns > 0:
        from snowai_studio.assistant.transcript import ChatView

        ChatView.MAX_TURNS_SHOWN = args.transcript_turns
    app = QApplication.instance() or QApplication([sys.argv[0]])
    rss_before_window = rss_mb()

    def note(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    note("building the window, the media and the models…")
    components = scripted_components if args.llm == "scripted" else None
    studio = Studio(folder, store_dir=args.store, svc_model=args.svc_model, components_factory=components)
    probe = StallProbe(args.interval)
    tracer = StallTracer(probe) if args.trace_stalls else None
    for tool in tools:
        studio.run(tool).prepare(args.warmup_timeout)
    spin(1.0)
    rows: list[dict[str, Any]] = []
    soak: dict[str, Any] = {}
    try:
        if args.soak > 0:
            samples: list[tuple[float, float]] = []
            note(f"soak: {' + '.join(tools)} for {args.soak:g} min…")
            row = measure(
                studio,
                tools,
                args.soak * 60.0,
                probe=probe,
                warmup_timeout=args.warmup_timeout,
                samples=samples,
                sample_every=args.sample_every,
                progress=note,
                tracer=tracer,
                take_census=args.census,
            )
            rows.append(row)
            soak = {**soak_figures(samples, args.soak_warmup), "samples": samples}
        else:
            groups = [tools] if args.all_at_once else [[t] for t in tools]
            for group in groups:
                note(f"measuring {' + '.join(group)} for {args.seconds:g} s…")
                try:
                    rows.append(
                        measure(
                            studio,
                            group,
                            args.seconds,
                            probe=probe,
                            warmup_timeout=args.warmup_timeout,
                            tracer=tracer,
                            take_census=args.census,
                        )
                    )
                except RuntimeError as exc:
                    note(f"  {exc}")
                    rows.append({"tools": group, "error": str(exc)})
    finally:
        studio.close()
        spin(0.5)

    print(table(rows))
    if soak:
        print()
        print(
            f"soak {args.soak:g} min: RSS {soak.get('rss_after_warmup_mb')} MB after {args.soak_warmup:.0f} s warm-up "
            f"-> {soak.get('rss_final_mb')} MB at the end ({soak.get('growth_after_warmup_pct')} %, "
            f"slope {soak.get('slope_mb_per_hour')} MB/h; min {soak.get('rss_min_mb')}, max {soak.get('rss_max_mb')}); "
            f"second half: {soak.get('growth_second_half_pct')} %, {soak.get('slope_second_half_mb_per_hour')} MB/h"
        )
    for row in rows:
        if row.get("census_growth"):
            print(f"\nobjects that grew during {' + '.join(row['tools'])}:")
            for name, n in row["census_growth"]:
                print(f"  +{n:<8} {name}")
    if tracer is not None and tracer.samples:
        print(f"\nwhere the UI thread was while the event loop ran late ({tracer.samples} samples):")
        for where, count in tracer.top():
            print(f"  {100.0 * count / tracer.samples:5.1f}%  {where}")
    import platform as _platform

    from PySide6 import QtCore

    data = {
        "machine": machine(qt=QtCore.qVersion(), qpa=app.platformName(), load_average=os.getloadavg()),
        "settings": {
            "tools": tools,
            "seconds": args.seconds,
            "all_at_once": args.all_at_once,
            "soak_minutes": args.soak,
            "soak_warmup_s": args.soak_warmup,
            "probe_interval_ms": args.interval,
            "svc_model": args.svc_model,
            "llm": args.llm,
            "transcript_turns": args.transcript_turns,
            "malloc_arenas": args.malloc_arenas or os.environ.get("MALLOC_ARENA_MAX", "glibc default"),
            "switch_interval_ms": round(sys.getswitchinterval() * 1000.0, 3),
            "python": _platform.python_version(),
            "rss_before_window_mb": round(rss_before_window, 1),
        },
        "targets": {"p99_stall_ms": TARGET_P99_MS, "soak_growth_pct": TARGET_GROWTH_PCT},
        "runs": rows,
        "soak": soak,
        "stall_trace": tracer.top(30) if tracer is not None else [],
    }
    write_results(args.json, data)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
