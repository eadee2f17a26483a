"""The local API against calling the engines in-process: latency, requests per second, memory.

    python benchmarks/api.py [--rounds 5] [--clients 4] [--requests 16] [--llm shipped|tiny]
                             [--json benchmarks/results/api.json]

A real ``snowai-studio serve`` runs in a child process (its own home and model store; Whisper tiny.en,
the shipped Piper voice, the shipped Gemma-3-270M or a tiny test model, U2-Net lite). This process
loads the same engines itself and calls them the way the server does (the same file reading,
rendering and encoding), so the difference is what HTTP, multipart uploads and the server's threads
add. Everything is warmed up first; then, for each round, the API call and the in-process call run
one after the other (A, B, A, B...), so that a busy machine slows both alike.

- ``latency``: the median and 90th percentile (ms) of transcription (a 3 s spoken question), chat (16
  tokens, greedy), and background removal (a 640x480 photo to PNG with alpha), through the API and
  in-process; and the API's own latency for speech (WAV), voice conversion (built-in changer), face
  swap (classic engine) and /v1/models.
- ``throughput``: requests per second with ``--clients`` clients sending ``--requests`` requests of
  each kind at once, against the same number done in a row in-process (each model serves one request
  at a time in both, so the API cannot beat the engine; the figure shows what it costs).
- ``concurrency``: ``--requests`` mixed requests at once (transcription, background removal, speech,
  chat): how many were answered, the wall time, and the server's memory before and after.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The server and the in-process engines alike run the matting model as it is (no 8-bit copy is made
# in the background while requests are timed).
os.environ.setdefault("SNOWAI_INT8_COPIES", "0")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import requests  # noqa: E402
import soundfile  # noqa: E402
from api_fixtures import start_server  # noqa: E402
from assistant_fixtures import QUESTIONS, padded, speech  # noqa: E402
from common import machine, write_results  # noqa: E402
from face_fixtures import astronaut, second_face  # noqa: E402


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1000, 1),
        "n": len(ordered),
    }


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _photo() -> np.ndarray:
    image = cv2.resize(astronaut(), (640, 480), interpolation=cv2.INTER_AREA)
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--llm", choices=("shipped", "tiny"), default="shipped")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "api.json")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="snowai-api-bench-"))
    store_root = home / "models"
    if args.llm == "tiny":
        from llm_fixtures import make_tiny_llm

        llm = {"llm_backend": "transformers", "llm_model": str(make_tiny_llm(home / "tiny-llm"))}
    else:
        llm = {"llm_backend": "gguf", "llm_model": "gemma-3-270m-q4-k-m-shipped"}
    settings = {
        "assistant": {"asr_model": "whisper-tiny-en-shipped", "language": "en", "temperature": 0.0, **llm},
        "face_swap": {"consent_accepted": True},
    }
    audio, rate = speech(QUESTIONS[0])
    clip = padded(audio, rate, 0.3, 0.5)
    buf = io.BytesIO()
    soundfile.write(buf, clip, rate, format="WAV", subtype="PCM_16")
    wav = buf.getvalue()
    (home / "question.wav").write_bytes(wav)
    photo_png = cv2.imencode(".png", _photo())[1].tobytes()
    (home / "photo.png").write_bytes(photo_png)
    face_png = cv2.imencode(".png", second_face())[1].tobytes()
    target_png = cv2.imencode(".png", astronaut())[1].tobytes()
    messages = [{"role": "user", "content": "What is the capital of France?"}]

    print("starting the server…", flush=True)
    server = start_server(home, settings, wait=600)
    url = server.base_url
    results: dict[str, Any] = {"machine": machine(), "settings": settings}
    try:
        # ---- in-process engines, loaded as the server loads them -----------------------------------
        from workers.api.context import ServerContext
        from workers.assistant.asr import Transcriber
        from workers.assistant.llm import ChatMessage, load_language_model
        from workers.assistant.options import AssistantOptions
        from workers.matting.batch import render
        from workers.matting.compose import parse_background
        from workers.matting.engine import MattingEngine
        from workers.matting.options import MattingOptions
        from workers.media.imageio import encode_image, load_image
        from workers.models.store import ModelStore

        store = ModelStore(store_root)
        options = AssistantOptions(**settings["assistant"])
        transcriber = Transcriber("whisper-tiny-en-shipped", store=store, device="cpu")
        print("loading the language model in-process…", flush=True)
        language_model = load_language_model(options, store=store, device="cpu")
        matting = MattingEngine(store, MattingOptions(model="u2netp"), device="cpu")
        matting.load()
        transparent = parse_background("transparent")
        del ServerContext  # imported only to prove the server's modules load beside the engines

        def local_transcribe() -> str:
            return transcriber.transcribe_file(home / "question.wav", language="en").text

        def local_chat() -> str:
            chat = [ChatMessage("system", options.system_prompt), ChatMessage("user", messages[0]["content"])]
            return "".join(language_model.stream(chat, max_new_tokens=16, temperature=0.0))

        def local_cutout() -> bytes:
            return encode_image(render(matting, load_image(home / "photo.png"), transparent), "png")

        def api_transcribe() -> str:
            r = requests.post(f"{url}/audio/transcriptions", files={"file": ("q.wav", wav)}, timeout=600)
            r.raise_for_status()
            return r.json()["text"]

        def api_chat() -> str:
            body = {"model": "default", "messages": messages, "max_tokens": 16, "temperature": 0}
            r = requests.post(f"{url}/chat/completions", json=body, timeout=600)
            r.raise_for_status()
            return r.json()["choices"][0]["message"]["content"]

        def api_cutout() -> bytes:
            r = requests.post(f"{url}/images/remove-background", files={"image": ("p.png", photo_png)}, timeout=600)
            r.raise_for_status()
            return r.content

        def api_speech() -> bytes:
            body = {"model": "tts-1", "voice": "alloy", "input": QUESTIONS[1], "response_format": "wav"}
            r = requests.post(f"{url}/audio/speech", json=body, timeout=600)
            r.raise_for_status()
            return r.content

        def api_voice() -> bytes:
            r = requests.post(f"{url}/audio/voice-conversion", files={"file": ("q.wav", wav)}, data={"pitch": "3"})
            r.raise_for_status()
            return r.content

        def api_face() -> bytes:
            files = {"source": ("face.png", face_png), "target": ("target.png", target_png)}
            r = requests.post(f"{url}/images/face-swap", files=files, data={"engine": "classic"}, timeout=600)
            r.raise_for_status()
            return r.content

        def api_models() -> Any:
            return requests.get(f"{url}/models", timeout=60).json()

        pairs = {
            "transcription": (api_transcribe, local_transcribe),
            "chat": (api_chat, local_chat),
            "remove-background": (api_cutout, local_cutout),
        }
        api_only = {"speech": api_speech, "voice-conversion": api_voice, "face-swap": api_face, "models": api_models}
        print("warming up…", flush=True)
        first: dict[str, float] = {}
        for name, (api_call, local_call) in pairs.items():
            first[name] = _timed(api_call)
            local_call()
            api_call()
        for name, call in api_only.items():
            first[name] = _timed(call)
            call()
        assert api_chat() == local_chat(), "the API and the engine answered differently"
        results["first_request_s"] = {k: round(v, 2) for k, v in first.items()}

        # ---- latency ------------------------------------------------------------------------------
        latency: dict[str, Any] = {}
        for name, (api_call, local_call) in pairs.items():
            api_times, local_times = [], []
            for _ in range(args.rounds):
                api_times.append(_timed(api_call))
                local_times.append(_timed(local_call))
            latency[name] = {"api": _ms(api_times), "in_process": _ms(local_times)}
            latency[name]["overhead_ms"] = round(
                latency[name]["api"]["median_ms"] - latency[name]["in_process"]["median_ms"], 1
            )
            print(
                f"{name:18} api {latency[name]['api']['median_ms']:8.1f} ms   in-process "
                f"{latency[name]['in_process']['median_ms']:8.1f} ms",
                flush=True,
            )
        for name, call in api_only.items():
            latency[name] = {"api": _ms([_timed(call) for _ in range(args.rounds)])}
            print(f"{name:18} api {latency[name]['api']['median_ms']:8.1f} ms", flush=True)
        results["latency"] = latency

        # ---- throughput ---------------------------------------------------------------------------
        throughput: dict[str, Any] = {}
        for name, (api_call, local_call) in pairs.items():
            n = args.requests if name != "chat" else max(4, args.requests // 4)
            with ThreadPoolExecutor(args.clients) as pool:
                started = time.perf_counter()
                list(pool.map(lambda _i, c=api_call: c(), range(n)))
                api_wall = time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(n):
                local_call()
            local_wall = time.perf_counter() - started
            throughput[name] = {
                "requests": n,
                "clients": args.clients,
                "api_per_s": round(n / api_wall, 2),
                "in_process_per_s": round(n / local_wall, 2),
            }
            print(f"{name:18} {n} requests: api {n / api_wall:6.2f}/s   in-process {n / local_wall:6.2f}/s", flush=True)
        results["throughput"] = throughput

        # ---- many at once -------------------------------------------------------------------------
        mixed = [api_transcribe, api_cutout, api_speech, api_chat]
        before = server.rss()
        answered = 0
        started = time.perf_counter()
        with ThreadPoolExecutor(args.requests) as pool:
            futures = [pool.submit(mixed[i % len(mixed)]) for i in range(args.requests)]
            for future in futures:
                future.result()
                answered += 1
        wall = time.perf_counter() - started
        after = server.rss()
        status = server.status()
        results["concurrency"] = {
            "requests": args.requests,
            "answered": answered,
            "wall_s": round(wall, 2),
            "server_rss_mb_before": round(before / 2**20, 1),
            "server_rss_mb_after": round(after / 2**20, 1),
            "loads_per_model": {f"{m['kind']}:{m['id']}": m["loads"] for m in status["models"]},
        }
        print(json.dumps(results["concurrency"], indent=2))
        results["summary"] = {
            "transcription_api_ms": latency["transcription"]["api"]["median_ms"],
            "transcription_in_process_ms": latency["transcription"]["in_process"]["median_ms"],
            "chat_api_ms": latency["chat"]["api"]["median_ms"],
            "chat_in_process_ms": latency["chat"]["in_process"]["median_ms"],
            "remove_background_api_ms": latency["remove-background"]["api"]["median_ms"],
            "remove_background_in_process_ms": latency["remove-background"]["in_process"]["median_ms"],
            "concurrent_answered": f"{answered}/{args.requests}",
            "server_rss_mb": results["concurrency"]["server_rss_mb_after"],
        }
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    write_results(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
