"""The voice assistant: microphone → VAD → Whisper → language model → Piper → speaker (no Qt)."""
