"""The local API's studio routes on a real server: background removal, face swap (its terms and its
mark), voice conversion, jobs, the bad-input corpus as uploads, upload limits, and many requests at
once (none lost, each model loaded once, memory bounded)."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import requests
import soundfile
from api_fixtures import UPLOAD_LIMIT_MB, ApiServer, api_server_fixture, one_sentence  # noqa: F401  (session fixtures)
from assistant_fixtures import QUESTIONS, padded, speech, words
from corpus import IMAGE, SOUND, corpus_cases
from face_fixtures import astronaut, second_face
from llm_fixtures import tiny_chat_llm_dir  # noqa: F401  (a session fixture)
from matting_fixtures import subject_image

from workers.face_swap.mark import mark_geometry, read_generated_label


def _png(bgr: np.ndarray) -> bytes:
    return cv2.imencode(".png", bgr)[1].tobytes()


def _decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def _wav(audio: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, audio, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _error(response: requests.Response) -> str:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
    message = response.json()["error"]["message"]
    assert one_sentence(message), message
    return message


def _wait_job(server: ApiServer, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{server.base_url}/jobs/{job_id}", timeout=30).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end")


def test_remove_background_png_webp_mask_and_colour(api_server: ApiServer) -> None:
    image = subject_image(96, 128)[0]
    url = f"{api_server.base_url}/images/remove-background"
    png = requests.post(url, files={"image": ("photo.png", _png(image))}, timeout=60)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    cutout = _decode(png.content)
    assert cutout.shape == (96, 128, 4) and cutout[..., 3].min() < 20 and cutout[..., 3].max() > 235
    webp = requests.post(url, files={"image": ("photo.jpg", _png(image))}, data={"format": "webp"}, timeout=60)
    assert webp.headers["content-type"] == "image/webp" and _decode(webp.content).shape == (96, 128, 4)
    mask = _decode(requests.post(url, files={"image": ("p.png", _png(image))}, data={"mask_only": "true"}).content)
    assert mask.ndim == 2 and np.array_equal(mask, cutout[..., 3])  # the same alpha, as a mask
    green = _decode(
        requests.post(url, files={"image": ("p.png", _png(image))}, data={"bg": "#00ff00", "format": "jpg"}).content
    )
    corner = green[:8, :8].reshape(-1, 3).mean(axis=0)
    assert green.shape == (96, 128, 3) and corner[1] > 200 and corner[0] < 60 and corner[2] < 60
    assert "u2netp" in _error(requests.post(url, files={"image": ("p.png", _png(image))}, data={"model": "u2netp/.."}))
    missing = _error(requests.post(url, files={"image": ("p.png", _png(image))}, data={"model": "u2net"}))
    assert "snowai-studio models download rembg-u2net" in missing
    assert "not a file" in _error(
        requests.post(url, files={"image": ("p.png", _png(image))}, data={"bg": "/etc/x.png"})
    )


def test_face_swap_needs_the_terms_and_marks_its_result(api_server: ApiServer) -> None:
    files = {"source": ("face.jpg", _png(second_face())), "target": ("astronaut.png", _png(astronaut()))}
    url = f"{api_server.base_url}/images/face-swap"
    settings = api_server.settings()
    api_server.write_settings({**settings, "face_swap": {"consent_accepted": False}})
    try:
        refused = requests.post(url, files=files, timeout=60)
        assert refused.status_code == 403 and "responsible-use terms" in _error(refused)
    finally:
        api_server.write_settings(settings)
    swapped = requests.post(url, files=files, timeout=120)
    assert swapped.status_code == 200 and swapped.headers["content-type"] == "image/png"
    assert "Swapped 1 of 1" in swapped.headers["x-snowai-notes"]
    result = _decode(swapped.content)
    target = astronaut()
    assert result.shape == target.shape and not np.array_equal(result, target)
    x1, y1, x2, y2 = mark_geometry(target.shape[1], target.shape[0])
    assert np.abs(result[y1:y2, x1:x2].astype(int) - target[y1:y2, x1:x2]).mean() > 20  # the visible mark
    (api_server.home / "swapped.png").write_bytes(swapped.content)
    assert "AI-generated" in (read_generated_label(api_server.home / "swapped.png") or "")
    no_face = requests.post(url, files={**files, "target": ("wall.png", _png(np.full((80, 90, 3), 90, np.uint8)))})
    assert "No face was found in wall.png" in _error(no_face)


def test_voice_conversion_and_its_job(api_server: ApiServer) -> None:
    audio, rate = speech(QUESTIONS[1])
    url = f"{api_server.base_url}/audio/voice-conversion"
    converted = requests.post(url, files={"file": ("voice.wav", _wav(audio, rate))}, data={"pitch": "3"}, timeout=60)
    assert converted.status_code == 200 and converted.headers["content-type"] == "audio/wav"
    out, out_rate = soundfile.read(io.BytesIO(converted.content), dtype="float32")
    assert len(out) / out_rate == pytest.approx(len(audio) / rate, abs=0.02)
    assert "semitones" in _error(requests.post(url, files={"file": ("v.wav", _wav(audio, rate))}, data={"pitch": "99"}))
    accepted = requests.post(
        url, files={"file": ("voice.wav", _wav(audio, rate))}, data={"job": "true", "format": "flac"}, timeout=60
    )
    assert accepted.status_code == 202 and accepted.headers["location"] == f"/v1/jobs/{accepted.json()['id']}"
    job = _wait_job(api_server, accepted.json()["id"])
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    result = requests.get(f"{api_server.root}{job['result_url']}", timeout=60)
    assert result.headers["content-type"] == "audio/flac"
    assert soundfile.info(io.BytesIO(result.content)).duration == pytest.approx(len(audio) / rate, abs=0.02)
    gone = requests.delete(f"{api_server.base_url}/jobs/{job['id']}", timeout=30)
    assert gone.json()["deleted"] and requests.get(f"{api_server.base_url}/jobs/{job['id']}").status_code == 404


def test_a_long_transcription_as_a_job_can_be_cancelled(api_server: ApiServer) -> None:
    audio, rate = speech(QUESTIONS[0])
    long = np.concatenate([padded(audio, rate, 0.2, 0.8)] * 20)  # about 50 s of questions
    url = f"{api_server.base_url}/audio/transcriptions"
    started = requests.post(url, files={"file": ("long.wav", _wav(long, rate))}, data={"job": "true"}, timeout=60)
    job_id = started.json()["id"]
    cancelled = requests.post(f"{api_server.base_url}/jobs/{job_id}/cancel", timeout=30).json()
    assert cancelled["id"] == job_id
    assert _wait_job(api_server, job_id)["status"] == "cancelled"
    assert requests.get(f"{api_server.base_url}/jobs/{job_id}/result", timeout=30).status_code == 409
    short = padded(audio, rate, 0.3, 0.5)
    done = requests.post(
        url, files={"file": ("q.wav", _wav(short, rate))}, data={"job": "true", "response_format": "text"}
    )
    job = _wait_job(api_server, done.json()["id"])
    assert job["status"] == "succeeded"
    text = requests.get(f"{api_server.root}{job['result_url']}", timeout=30).text
    assert words(text) == words(QUESTIONS[0])


def test_the_bad_input_corpus_as_uploads(api_server: ApiServer) -> None:
    """Every image, sound and video of the corpus, uploaded as an image and as a sound: what the
    readers accept is answered, everything else is a 4xx with one sentence (never a 500)."""
    cases = [c for c in corpus_cases().values() if c.kind in ("image", "audio", "video") and c.path.is_file()]
    assert len(cases) > 50
    for case in cases:
        data = case.path.read_bytes()
        as_image = requests.post(
            f"{api_server.base_url}/images/remove-background",
            files={"image": (case.path.name, data)},
            data={"model": api_server.tiny_matting},
            timeout=120,
        )
        if case.accepted_by(IMAGE):
            assert as_image.status_code == 200, (case.name, as_image.text[:200])
        else:
            _error(as_image)
        as_sound = requests.post(
            f"{api_server.base_url}/audio/transcriptions",
            files={"file": (case.path.name, data)},
            data={"response_format": "text"},
            timeout=120,
        )
        if case.accepted_by(SOUND):
            assert as_sound.status_code == 200, (case.name, as_sound.text[:200])
        else:
            _error(as_sound)


def test_uploads_over_the_limit_are_refused(api_server: ApiServer) -> None:
    big = b"\0" * ((UPLOAD_LIMIT_MB + 2) * 1024 * 1024)
    response = requests.post(
        f"{api_server.base_url}/images/remove-background", files={"image": ("big.png", big)}, timeout=60
    )
    assert response.status_code == 413 and f"{UPLOAD_LIMIT_MB} MB" in _error(response)

    def chunks():  # no Content-Length: the server counts as the body comes
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        for _ in range(UPLOAD_LIMIT_MB + 3):
            yield b"\0" * (1024 * 1024)
        yield b"\r\n--xyz--\r\n"

    chunked = requests.post(
        f"{api_server.base_url}/audio/transcriptions",
        data=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        timeout=60,
    )
    assert chunked.status_code == 413 and f"{UPLOAD_LIMIT_MB} MB" in _error(chunked)


def test_many_requests_at_once_none_lost_models_loaded_once(api_server: ApiServer) -> None:
    audio, rate = speech(QUESTIONS[0])
    clip = _wav(padded(audio, rate, 0.3, 0.5), rate)
    images = [subject_image(64 + 8 * i, 80, seed=i)[0] for i in range(6)]

    def transcribe(_i: int) -> str:
        r = requests.post(f"{api_server.base_url}/audio/transcriptions", files={"file": ("q.wav", clip)}, timeout=300)
        assert r.status_code == 200, r.text
        return r.json()["text"]

    def cut(i: int) -> tuple[int, ...]:
        r = requests.post(
            f"{api_server.base_url}/images/remove-background",
            files={"image": ("p.png", _png(images[i]))},
            data={"model": api_server.tiny_matting},
            timeout=300,
        )
        assert r.status_code == 200, r.text
        return _decode(r.content).shape

    def round_of_requests() -> None:
        with ThreadPoolExecutor(8) as pool:
            texts = pool.map(transcribe, range(4))
            shapes = pool.map(cut, range(6))
            texts, shapes = list(texts), list(shapes)
        assert all(words(t) == words(QUESTIONS[0]) for t in texts)
        assert shapes == [(64 + 8 * i, 80, 4) for i in range(6)]

    round_of_requests()  # warm: the models are loaded and the server's threads have met the work
    before = api_server.rss()
    round_of_requests()
    round_of_requests()
    grown = api_server.rss() - before
    assert grown < 100 * 1024 * 1024, f"the server grew by {grown / 2**20:.0f} MB"
    loaded = {(m["kind"], m["id"]): m for m in api_server.status()["models"]}
    assert loaded[("transcription", "whisper-tiny-en-shipped")]["loads"] == 1
    assert loaded[("remove-background", api_server.tiny_matting)]["loads"] == 1
    assert loaded[("transcription", "whisper-tiny-en-shipped")]["waiting"] == 0


def test_a_video_target_is_swapped_as_a_job(api_server: ApiServer, tmp_path) -> None:
    import av

    video = tmp_path / "clip.mp4"
    frame = cv2.resize(astronaut(), (192, 192), interpolation=cv2.INTER_AREA)
    with av.open(str(video), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 192, 192, "yuv420p"
        for i in range(6):
            picture = av.VideoFrame.from_ndarray(frame, format="bgr24")
            picture.pts = i
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    files = {"source": ("face.png", _png(second_face())), "target": ("clip.mp4", video.read_bytes())}
    url = f"{api_server.base_url}/images/face-swap"
    assert "job=true" in _error(requests.post(url, files=files, timeout=60))
    accepted = requests.post(url, files=files, data={"job": "true"}, timeout=60)
    assert accepted.status_code == 202
    job = _wait_job(api_server, accepted.json()["id"])
    assert job["status"] == "succeeded", job
    result = requests.get(f"{api_server.root}{job['result_url']}", timeout=60)
    assert result.headers["content-type"] == "video/mp4"
    swapped = tmp_path / "swapped.mp4"
    swapped.write_bytes(result.content)
    with av.open(str(swapped)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
        tags = dict(container.metadata)
    assert len(frames) == 6 and any("AI-generated" in str(v) for v in tags.values()), tags
