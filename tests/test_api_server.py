"""``snowai-studio serve`` itself: the host rule, a taken port, the API key, and stopping with requests
in flight (each one is answered, none is lost; a running job does not hold the server up)."""

from __future__ import annotations

import io
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile
from api_fixtures import one_sentence, session_settings, start_server
from assistant_fixtures import QUESTIONS, padded, speech, words

from snowai_studio import cli


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_other_hosts_need_a_key(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--host", host]) == 1
    err = capsys.readouterr().err
    assert "needs an API key" in err and "Traceback" not in err and err.count("\n") == 1


def test_a_taken_port_is_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"Port {port} on 127.0.0.1 is already in use" in err and one_sentence(err.strip().removeprefix("Error: "))


def _wav(seconds_of_questions: int) -> bytes:
    audio, rate = speech(QUESTIONS[0])
    clip = np.concatenate([padded(audio, rate, 0.2, 0.6)] * seconds_of_questions)
    buf = io.BytesIO()
    soundfile.write(buf, clip, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_key_and_stopping_with_requests_in_flight(tmp_path: Path) -> None:
    # No chat here: the language model in the settings is never loaded.
    server = start_server(tmp_path / "home", session_settings(tmp_path / "no-llm"), api_key="sk-test-key")
    try:
        url = server.base_url
        assert requests.get(f"{server.root}/health", timeout=30).status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "nope"}):
            refused = requests.get(f"{url}/models", headers=headers, timeout=30)
            assert refused.status_code == 401 and one_sentence(refused.json()["error"]["message"])
        assert "default" in {m.id for m in server.client().models.list()}
        assert requests.get(f"{url}/models", headers={"X-API-Key": "sk-test-key"}, timeout=30).status_code == 200

        # A long job, then three transcriptions that queue behind each other for the one Whisper model.
        job = requests.post(
            f"{url}/audio/transcriptions",
            headers=server.headers(),
            files={"file": ("long.wav", _wav(30))},
            data={"job": "true"},
            timeout=60,
        )
        assert job.status_code == 202
        clip = _wav(1)
        answers: list[requests.Response | BaseException] = []

        def ask() -> None:
            try:
                answers.append(
                    requests.post(
                        f"{url}/audio/transcriptions",
                        headers=server.headers(),
                        files={"file": ("q.wav", clip)},
                        timeout=120,
                    )
                )
            except BaseException as exc:
                answers.append(exc)

        threads = [threading.Thread(target=ask) for _ in range(3)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until all three are inside the server
            slots = [m for m in server.status()["models"] if m["kind"] == "transcription"]
            if slots and slots[0]["waiting"] + slots[0]["requests"] >= 4:
                break
            time.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(120)
        assert server.process.wait(90) == 0
    finally:
        server.stop()
    assert len(answers) == 3
    for answer in answers:
        assert isinstance(answer, requests.Response) and answer.status_code == 200, (answer, answer.text)
        assert words(answer.json()["text"]) == words(QUESTIONS[0])
    assert any("The API server stopped." in line for line in server.output)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.root}/health", timeout=5)
    assert not (server.home / "data" / "local-api.json").exists()
