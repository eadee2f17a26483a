"""The studio's local HTTP API (``snowai-studio serve``): OpenAI-compatible speech and chat, and the
image and voice tools, on the same engines and model store as the window.

:mod:`workers.api.options` is light (the window imports it for its settings); everything else imports
FastAPI and, when a request needs it, a model runtime.
"""
