"""The local API through the official ``openai`` client: models, transcriptions and translations,
speech (WAV and PCM, streamed), chat completions (streamed and not), and its one-sentence errors."""

from __future__ import annotations

import io
import json

import numpy as np
import openai
import pytest
import requests
import soundfile
from api_fixtures import ApiServer, api_server_fixture, one_sentence  # noqa: F401  (session fixtures)
from assistant_fixtures import QUESTIONS, padded, speech, words
from llm_fixtures import tiny_chat_llm_dir  # noqa: F401  (a session fixture)


@pytest.fixture(scope="module")
def client(api_server: ApiServer) -> openai.OpenAI:
    return api_server.client()


@pytest.fixture(scope="module")
def question_wav() -> bytes:
    """A Piper-spoken question (the same take every run) as a WAV file."""
    audio, rate = speech(QUESTIONS[0])
    buf = io.BytesIO()
    soundfile.write(buf, padded(audio, rate, 0.3, 0.5), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_models_lists_the_store_by_task(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert {"default", "whisper-tiny-en-shipped", "piper-en-us-joe-medium-shipped", "rembg-u2netp"} <= set(models)
    assert models["whisper-tiny-en-shipped"].task == "transcription"  # extra fields pass through the client
    assert models["rembg-u2netp"].task == "remove-background"
    assert "inswapper-128" not in models  # models that are not installed are not offered
    assert client.models.retrieve("piper-en-us-joe-medium-shipped").task == "speech"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert one_sentence(info.value.body["message"])


def test_transcription_in_every_format(client: openai.OpenAI, question_wav: bytes) -> None:
    result = client.audio.transcriptions.create(model="whisper-1", file=("question.wav", question_wav))
    assert words(result.text) == words(QUESTIONS[0])
    verbose = client.audio.transcriptions.create(
        model="default", file=("question.wav", question_wav), response_format="verbose_json", language="en"
    )
    assert verbose.language == "en" and verbose.duration == pytest.approx(
        len(speech(QUESTIONS[0])[0]) / 22050 + 0.8, abs=0.05
    )
    assert verbose.segments and verbose.segments[0].end > verbose.segments[0].start
    text = client.audio.transcriptions.create(
        model="whisper-tiny-en-shipped", file=("question.wav", question_wav), response_format="text"
    )
    assert words(text) == words(QUESTIONS[0])
    srt = client.audio.transcriptions.create(model="default", file=("q.wav", question_wav), response_format="srt")
    assert srt.startswith("1\n00:00:0") and " --> " in srt
    vtt = client.audio.transcriptions.create(model="default", file=("q.wav", question_wav), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:0")


def test_translation_needs_a_multilingual_model(client: openai.OpenAI, question_wav: bytes) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.translations.create(model="default", file=("question.wav", question_wav))
    message = info.value.body["message"]
    assert "English only" in message and one_sentence(message)


def test_speech_streams_wav_and_pcm_that_whisper_understands(client: openai.OpenAI) -> None:
    text = "The studio speaks through its local server."
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text, response_format="wav"
    ) as response:
        assert response.headers["content-type"] == "audio/wav"
        chunks = list(response.iter_bytes())
    wav = b"".join(chunks)
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    samples = np.frombuffer(wav[44:], "<i2")
    rate = int.from_bytes(wav[24:28], "little")
    assert rate == 22050 and len(samples) / rate > 1.0
    pcm = client.audio.speech.create(model="default", voice="default", input=text, response_format="pcm").content
    # OpenAI's raw PCM: 24 kHz, 16-bit mono; about as long as the WAV (Piper varies its timing a little).
    assert len(pcm) % 2 == 0 and len(pcm) / 2 / 24000 == pytest.approx(len(samples) / rate, rel=0.25)
    heard = client.audio.transcriptions.create(model="default", file=("said.wav", wav))
    assert {"studio", "local", "server"} <= set(words(heard.text))


def test_speech_refuses_what_it_cannot_do(client: openai.OpenAI) -> None:
    cases = [
        ({"voice": "alloy", "input": "Hi.", "response_format": "mp3"}, "wav"),
        ({"voice": "no-such-voice", "input": "Hi."}, "GET /v1/models"),
        ({"voice": "whisper-tiny-en-shipped", "input": "Hi."}, "not a voice"),
        ({"voice": "alloy", "input": "   "}, "empty"),
        ({"voice": "alloy", "input": "Hi.", "speed": 9.0}, "speed"),
    ]
    for kwargs, expected in cases:
        with pytest.raises(openai.BadRequestError) as info:
            client.audio.speech.create(model="tts-1", **kwargs)
        message = info.value.body["message"]
        assert expected in message and one_sentence(message), kwargs


def test_chat_streamed_and_not(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Say something."}]
    reply = client.chat.completions.create(model="default", messages=messages, max_tokens=6, temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length" and reply.usage.completion_tokens == 6
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 6 and reply.usage.prompt_tokens > 0
    stream = client.chat.completions.create(
        model="default",
        messages=messages,
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([d for d in deltas if d]) >= 2  # it streamed piece by piece
    assert "".join(deltas) == choice.message.content  # greedy: the same answer either way
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 6


def test_chat_parts_system_and_stop(api_server: ApiServer, client: openai.OpenAI) -> None:
    plain = (
        client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Hi"}], max_tokens=8, temperature=0
        )
        .choices[0]
        .message.content
    )
    assert len(plain) >= 3
    stop = plain[2:4]
    parts = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        max_tokens=8,
        temperature=0,
        stop=[stop],
    )
    cut = parts.choices[0]
    assert cut.message.content == plain[: plain.index(stop)] and cut.finish_reason == "stop"
    # The model loaded once for all of these requests.
    chat_models = [m for m in api_server.status()["models"] if m["kind"] == "chat"]
    assert len(chat_models) == 1 and chat_models[0]["loads"] == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"messages": []}, "at least one message"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "text only"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 5}, "temperature"),
        ({"messages": [{"role": "user", "content": "hi"}], "model": "rembg-u2netp"}, "not a language model"),
        ({"messages": [{"role": "user", "content": "hi"}], "model": "/etc/passwd"}, "is a path"),
    ],
)
def test_chat_bad_requests_are_one_sentence(api_server: ApiServer, body: dict, expected: str) -> None:
    response = requests.post(f"{api_server.base_url}/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert expected in message and one_sentence(message)


def test_raw_http_errors_are_one_sentence(api_server: ApiServer, question_wav: bytes) -> None:
    url = api_server.base_url
    cases = [
        requests.post(f"{url}/audio/transcriptions", data={"model": "default"}, timeout=30),
        requests.post(
            f"{url}/audio/transcriptions",
            files={"file": ("q.wav", question_wav)},
            data={"response_format": "docx"},
            timeout=30,
        ),
        requests.post(
            f"{url}/audio/transcriptions",
            files={"file": ("q.wav", question_wav)},
            data={"model": "../models/x"},
            timeout=30,
        ),
        requests.post(f"{url}/chat/completions", data=b"{not json", timeout=30),
        requests.get(f"{url}/nothing-here", timeout=30),
        requests.post(
            f"{url}/audio/transcriptions", files={"file": ("q.wav", question_wav)}, data={"job": "maybe"}, timeout=30
        ),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, response.text
        body = response.json()
        assert set(body) == {"error"} and one_sentence(body["error"]["message"]), body
    assert json.loads(cases[0].text)["error"]["message"] == (
        "The file field 'file' is missing: send the file as multipart form data."
    )
