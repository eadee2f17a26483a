"""The voice assistant's options: saved in the settings' ``assistant`` group, changed live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

#: Which language-model backend answers.
LLM_BACKENDS = ("transformers", "gguf", "openai")
#: How a turn is taken: voice activity detection, or push-to-talk.
TURN_MODES = ("vad", "ptt")
TURN_DETECTION = ("learned", "silence")
TTS_ENGINES = ("piper", "bark")

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly, helpful voice assistant. Answer in one or two short spoken sentences, "
    "without lists, markup or emoji."
)


@dataclass
class AssistantOptions:
    #: The group of the settings file these options are saved in (see :meth:`workers.settings.Settings.options`).
    SETTINGS_SECTION: ClassVar[str] = "assistant"

    # ---- listening ----
    #: "vad" (speak, pause, the assistant answers) or "ptt" (hold the talk button).
    mode: str = "vad"
    #: Silero speech probability above which a frame counts as speech.
    vad_threshold: float = 0.5
    #: Silence (ms) that ends a turn (with learned turn detection: only when the model is missing).
    min_silence_ms: int = 300
    #: "learned": after a short silence a small model (Smart Turn) hears whether you finished: a
    #: finished turn is answered at once, an unfinished one waits through the pause. "silence": a
    #: turn ends after ``min_silence_ms`` of silence, whatever it sounds like.
    turn_detection: str = "learned"
    #: Learned turns: the silence (ms) after which the model is asked.
    turn_silence_ms: int = 160
    #: Learned turns: the longest pause (ms) waited through when you sound unfinished.
    pause_ms: int = 1200
    #: Shortest speech (ms) that counts as a turn (coughs and clicks are ignored).
    min_speech_ms: int = 200
    #: Audio kept before the detected start of speech and after its end (ms).
    speech_pad_ms: int = 200
    #: True: headphones, so the microphone stays open while the assistant speaks. False: speakers,
    #: so the echo guard keeps the assistant from answering its own voice.
    headset: bool = False
    #: Speaking over the assistant stops it.
    barge_in: bool = True

    # ---- speech recognition ----
    #: A model id from the model manager, or a folder holding a CTranslate2 Whisper model. The default,
    #: the shipped multilingual Whisper base, made fewer word errors than the shipped tiny.en (8 % vs
    #: 11 % on clean and 22 % vs 31 % on noisy speech) for about 0.12 s more before the answer starts
    #: (docs/assistant-defaults.md); tiny.en (``whisper-tiny-en-shipped``, English only) stays selectable.
    asr_model: str = "whisper-base-shipped"
    #: "auto" or a language code ("en", "de", ...). English by default, like the default language
    #: model and voice: with "auto" the multilingual Whisper base now and then took English speech for
    #: another language (a wrong transcript, sometimes seconds late), and it made more word errors.
    language: str = "en"

    # ---- language model ----
    llm_backend: str = "gguf"
    #: A model id, a GGUF file or a transformers model folder (transformers and gguf backends).
    llm_model: str = "gemma-3-270m-q4-k-m-shipped"
    #: The OpenAI-compatible server (Ollama: http://127.0.0.1:11434/v1, llama.cpp server:
    #: http://127.0.0.1:8080/v1, LM Studio: http://127.0.0.1:1234/v1).
    server_url: str = "http://127.0.0.1:11434/v1"
    #: The model name the server should use ("" lets the server choose).
    server_model: str = ""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    #: Tokens of earlier conversation kept in the prompt.
    memory_tokens: int = 1024
    max_new_tokens: int = 120
    #: Weights of a transformers model on an NVIDIA GPU: "auto" (as saved), "none", "8bit" or "4bit"
    #: (4/8-bit need bitsandbytes).
    llm_quantization: str = "auto"
    #: CPU threads for the language model (0: as many as the machine has cores).
    llm_threads: int = 0
    #: 0 is greedy decoding: the shipped Gemma answered twice as many simple questions right with it
    #: as sampled at 0.7 (docs/assistant-defaults.md).
    temperature: float = 0.0

    # ---- speech ----
    tts_engine: str = "piper"
    #: A Piper voice model id (or .onnx path); for Bark a model id or folder.
    voice: str = "piper-en-us-joe-medium-shipped"
    #: Speaking rate: 1.0 normal, 1.2 faster.
    speed: float = 1.0
