"""The voice assistant from a terminal.

- ``snowai-studio transcribe FILE... [--format txt|srt|vtt] [-o OUT]``: speech to text;
- ``snowai-studio say "TEXT" -o OUT.wav [--voice ID]``: text to speech;
- ``snowai-studio chat``: a conversation typed in the terminal, answered by the same language model
  backends as the dock, printed as it streams and optionally spoken (``--speak``) or saved
  (``--audio-dir``).

Failures print one sentence, never a traceback (see :func:`workers.cli.run_reporting`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from workers.assistant.options import LLM_BACKENDS, TTS_ENGINES, AssistantOptions
from workers.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_store_argument, open_store, run_reporting
from workers.errors import UserError

TRANSCRIPT_FORMATS = ("txt", "srt", "vtt")


def add_parser(subparsers: Any) -> None:
    """Add ``transcribe``, ``say`` and ``chat`` to an argparse sub-parser set."""
    defaults = AssistantOptions()

    p = subparsers.add_parser(
        "transcribe",
        help="turn speech in audio or video files into text (txt, srt, vtt)",
        description="Transcribe audio or video files with Whisper (faster-whisper). Any format, rate and "
        "channel count; the text is printed, or written next to -o.",
    )
    p.add_argument("inputs", nargs="+", metavar="FILE", help="audio or video files")
    p.add_argument("--format", dest="fmt", choices=TRANSCRIPT_FORMATS, default="txt", help="output format")
    p.add_argument("-o", "--output", type=Path, default=None, metavar="OUT",
                   help="a file (one input) or a folder (several inputs); default: print to the terminal")
    p.add_argument("--model", default=defaults.asr_model, metavar="ID|FOLDER",
                   help=f"a Whisper model id or a CTranslate2 model folder (default {defaults.asr_model})")
    p.add_argument("--language", default="auto", help="a language code such as en or de, or auto (default)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="compute device")
    add_store_argument(p)
    p.set_defaults(func=run_transcribe)

    p = subparsers.add_parser(
        "say",
        help="speak a text into a WAV file",
        description="Speak TEXT with a Piper voice (or Bark) and write it to a WAV file.",
    )
    p.add_argument("text", help="the text to speak ('-' reads it from standard input)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.wav")
    p.add_argument("--voice", default=None, metavar="ID|PATH",
                   help=f"a voice model id or .onnx file (default {defaults.voice})")
    p.add_argument("--engine", choices=TTS_ENGINES, default="piper", help="speech engine (default piper)")
    p.add_argument("--speed", type=float, default=1.0, help="speaking rate, 1.0 normal (default)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="compute device (Bark)")
    add_store_argument(p)
    p.set_defaults(func=run_say)

    p = subparsers.add_parser(
        "chat",
        help="talk with the assistant's language model in the terminal",
        description="A conversation in the terminal: type a message, the answer streams back. Commands: "
        "/reset starts over, /save FILE keeps the conversation (.json or .md), /quit ends.",
    )
    p.add_argument("--backend", choices=LLM_BACKENDS, default=None,
                   help=f"language model backend (default from the settings, else {defaults.llm_backend})")
    p.add_argument("--model", default=None, metavar="ID|PATH",
                   help="a model id, a GGUF file or a transformers model folder (default from the settings)")
    p.add_argument("--server-url", default=None, metavar="URL",
                   help=f"the OpenAI-compatible server (backend openai; default {defaults.server_url})")
    p.add_argument("--server-model", default=None, metavar="NAME", help="the model name on that server")
    p.add_argument("--system", default=None, metavar="TEXT", help="the system prompt")
    p.add_argument("--max-tokens", type=int, default=None, help="longest answer in tokens")
    p.add_argument("--temperature", type=float, default=None, help="0 for the same answer every time")
    p.add_argument("--speak", action="store_true", help="also speak each answer through the speaker")
    p.add_argument("--audio-dir", type=Path, default=None, metavar="DIR",
                   help="also write each spoken answer to DIR/reply-N.wav")
    p.add_argument("--voice", default=None, metavar="ID|PATH", help="the voice for --speak / --audio-dir")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="compute device")
    add_store_argument(p)
    p.set_defaults(func=run_chat)


# ---- transcribe ---------------------------------------------------------------------------------


def run_transcribe(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    return run_reporting("transcribe", lambda: _transcribe(args, out, err), err, cancelled="\nCancelled.\n")


def _transcribe(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from workers.assistant.asr import Transcriber, format_transcript
    from workers.files import write_atomic

    inputs = [Path(p) for p in args.inputs]
    if args.output is not None and len(inputs) > 1 and args.output.suffix:
        err.write("With several inputs, -o must be a folder.\n")
        return EXIT_USAGE
    transcriber = Transcriber(args.model, store=open_store(args), device=args.device)
    failed = 0
    for path in inputs:
        try:
            transcript = transcriber.transcribe_file(path, language=args.language)
        except UserError as exc:
            text = str(exc)
            err.write(f"{text}\n" if path.name in text else f"{path.name}: {text}\n")
            failed += 1
            continue
        text = format_transcript(transcript, args.fmt)
        if args.output is None:
            out.write(text if text.endswith("\n") else text + "\n")
            continue
        dest = args.output
        if len(inputs) > 1 or dest.is_dir():
            dest = dest / f"{path.stem}.{args.fmt}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(dest, text.encode("utf-8"))
        err.write(
            f"{path.name}: {transcript.duration:.1f} s of speech in {transcript.seconds:.1f} s → {dest}\n"
        )
    return EXIT_FAILED if failed else EXIT_OK


# ---- say ------------------------------------------------------------------------------------------


def run_say(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    return run_reporting("say", lambda: _say(args, out, err), err, cancelled="\nCancelled; nothing was written.\n")


def _say(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import numpy as np

    from workers.assistant.tts import load_voice

    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        err.write("There is nothing to say: the text is empty.\n")
        return EXIT_USAGE
    if args.output.suffix.lower() != ".wav":
        err.write("The output must be a .wav file.\n")
        return EXIT_USAGE
    voice_id = args.voice or AssistantOptions().voice
    voice = load_voice(args.engine, voice_id, store=open_store(args), speed=args.speed, device=args.device)
    audio = np.concatenate([np.zeros(0, np.float32), *voice.synthesize(text)])
    path = _write_wav(args.output, audio, voice.sample_rate)
    out.write(f"{path} ({len(audio) / voice.sample_rate:.1f} s, {voice.sample_rate} Hz, voice {voice.name})\n")
    return EXIT_OK


def _write_wav(path: Path, audio: Any, rate: int) -> Path:
    """Write 16-bit PCM atomically (temp file, then rename)."""
    import io

    import soundfile

    from workers.files import write_atomic

    buf = io.BytesIO()
    soundfile.write(buf, audio, rate, format="WAV", subtype="PCM_16")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buf.getvalue())
    return path


# ---- chat -----------------------------------------------------------------------------------------


def _chat_options(args: argparse.Namespace) -> AssistantOptions:
    from workers.settings import Settings

    options = dataclasses.replace(Settings.load().options(AssistantOptions))
    if args.backend:
        options.llm_backend = args.backend
    if args.model:
        options.llm_model = args.model
        if not args.backend:
            # A path says which backend it needs.
            path = Path(args.model)
            if path.suffix.lower() == ".gguf":
                options.llm_backend = "gguf"
            elif path.is_dir():
                options.llm_backend = "transformers"
    if args.server_url:
        options.server_url = args.server_url
    if args.server_model is not None:
        options.server_model = args.server_model
    if args.system is not None:
        options.system_prompt = args.system
    if args.max_tokens is not None:
        options.max_new_tokens = max(1, args.max_tokens)
    if args.temperature is not None:
        options.temperature = max(0.0, args.temperature)
    if args.voice:
        options.voice = args.voice
    return options


def run_chat(
    args: argparse.Namespace,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    out, err, stdin = out or sys.stdout, err or sys.stderr, stdin or sys.stdin
    return run_reporting("chat", lambda: _chat(args, out, err, stdin), err, cancelled="\nBye.\n")


class _Speaker:
    """Speaks answers sentence by sentence on a thread, and/or saves them as WAV files."""

    def __init__(self, voice: Any, play: bool, audio_dir: Path | None, err: TextIO) -> None:
        import queue

        self.voice = voice
        self.audio_dir = audio_dir
        self.err = err
        self.sink: Any = None
        if play:
            from workers.media.audio import AudioOutput

            try:
                sink = AudioOutput(samplerate=voice.sample_rate, channels=1)
                sink.open()
                self.sink = sink
            except UserError as exc:
                err.write(f"{exc} Answers are printed only.\n")
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._parts: list[Any] = []
        self._thread = threading.Thread(target=self._run, name="chat-speaker", daemon=True)
        self._thread.start()

    def say(self, sentence: str) -> None:
        self._queue.put(sentence)

    def _run(self) -> None:
        while (sentence := self._queue.get()) is not None:
            try:
                for chunk in self.voice.synthesize(sentence):
                    if self.audio_dir is not None:
                        self._parts.append(chunk)
                    if self.sink is not None:
                        self.sink.write(chunk)
            except Exception as exc:  # speech must not end the conversation
                self.err.write(f"The answer could not be spoken ({exc}).\n")
            finally:
                self._queue.task_done()

    def finish_turn(self, number: int) -> Path | None:
        """Wait for this answer's speech; save it when asked to."""
        self._queue.join()
        if self.audio_dir is None or not self._parts:
            return None
        import numpy as np

        audio = np.concatenate(self._parts)
        self._parts = []
        return _write_wav(self.audio_dir / f"reply-{number}.wav", audio, self.voice.sample_rate)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
        if self.sink is not None:
            self.sink.drain(timeout=30)
            self.sink.close()


def _chat(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    from workers.assistant.conversation import Conversation
    from workers.assistant.llm import load_language_model
    from workers.assistant.sentences import SentenceSplitter, speakable

    options = _chat_options(args)
    store = open_store(args)
    interactive = stdin.isatty()

    def status(text: str) -> None:
        err.write(text + "\n")

    llm = load_language_model(options, store=store, status=status, device=args.device)
    if llm.note:
        err.write(llm.note + "\n")
    speaker: _Speaker | None = None
    if args.speak or args.audio_dir is not None:
        from workers.assistant.tts import load_voice

        voice = load_voice(options.tts_engine, options.voice, store=store, speed=options.speed, device=args.device)
        speaker = _Speaker(voice, args.speak, args.audio_dir, err)
    conversation = Conversation(system_prompt=options.system_prompt, turns=[])
    if interactive:
        err.write(f"Talking with {llm.name}. Type a message; /reset starts over, /save FILE keeps it, /quit ends.\n")
    try:
        while True:
            if interactive:
                out.write("you> ")
                out.flush()
            line = stdin.readline()
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            if text == "/reset":
                conversation = Conversation(system_prompt=options.system_prompt, turns=[])
                err.write("The conversation starts over.\n")
                continue
            if text.startswith("/save"):
                target = text[len("/save") :].strip()
                if not target:
                    err.write("Say where: /save FILE.json or /save FILE.md\n")
                    continue
                try:
                    err.write(f"Saved to {conversation.save(Path(target).expanduser())}\n")
                except UserError as exc:
                    err.write(f"{exc}\n")
                continue
            turn = conversation.new_turn(text, source="text")
            messages = conversation.messages(budget=options.memory_tokens, count=llm.count_tokens)
            splitter = SentenceSplitter()
            out.write("assistant> " if interactive else "")
            parts: list[str] = []
            for delta in llm.stream(messages, max_new_tokens=options.max_new_tokens, temperature=options.temperature):
                parts.append(delta)
                out.write(delta)
                out.flush()
                if speaker is not None:
                    for sentence in splitter.feed(delta):
                        if said := speakable(sentence):
                            speaker.say(said)
            out.write("\n")
            out.flush()
            turn.assistant = "".join(parts).strip()
            if speaker is not None:
                for sentence in splitter.flush():
                    if said := speakable(sentence):
                        speaker.say(said)
                saved = speaker.finish_turn(turn.id)
                if saved is not None:
                    err.write(f"(spoken answer saved to {saved})\n")
    finally:
        if speaker is not None:
            speaker.close()
        llm.close()
    return EXIT_OK
