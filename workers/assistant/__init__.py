"""The voice assistant: microphone → VAD → Whisper → language model → Piper → speaker (no Qt).

Speech engines: :mod:`~workers.assistant.vad` (Silero VAD and the endpointer that finds turns),
:mod:`~workers.assistant.asr` (faster-whisper transcription and sound-file reading),
:mod:`~workers.assistant.tts` (Piper and Bark voices), :mod:`~workers.assistant.sentences`
(streamed text cut into speakable sentences). Each imports its model runtime only when a model
is loaded, so importing this package stays cheap.
"""
