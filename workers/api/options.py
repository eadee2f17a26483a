"""The local API's settings (the ``local_api`` group of the settings file) and what the window shows
about them. Light module: no web framework and no model runtime, so the Qt settings dialog imports it.
"""

from __future__ import annotations

import ipaddress
import secrets
import shlex
from dataclasses import dataclass
from typing import ClassVar

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: The largest upload the server reads, in MB (a bigger one is refused with 413 and a sentence).
DEFAULT_MAX_UPLOAD_MB = 200
#: The environment variable the key may come in (a child process gets it there, not on its command line).
API_KEY_ENV = "SNOWAI_API_KEY"


@dataclass
class ApiOptions:
    #: The group of the settings file these options are saved in.
    SETTINGS_SECTION: ClassVar[str] = "local_api"

    #: Serve the API while the studio's window is open.
    enabled: bool = False
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: "" means no key (allowed only on this computer's loopback address).
    api_key: str = ""
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this computer (127.0.0.0/8, ::1, localhost)."""
    text = (host or "").strip().strip("[]").lower()
    if text == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def host_problem(host: str, api_key: str) -> str:
    """A sentence when ``host`` may not be served with ``api_key`` (any other host needs a key), else ""."""
    if is_loopback(host):
        return ""
    if not (api_key or "").strip():
        return (
            f"Serving on {host} lets other computers reach the studio, so it needs an API key; set one, or "
            f"serve on {DEFAULT_HOST} (this computer only)."
        )
    return ""


def new_api_key() -> str:
    """A fresh random key (43 URL-safe characters)."""
    return "sk-snowai-" + secrets.token_urlsafe(32)


def base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host in ("::", "::1") else host)
    return f"http://{shown}:{port}/v1"


def client_example(host: str, port: int, api_key: str = "") -> str:
    """A copyable example: a curl line and a few lines of the ``openai`` Python client."""
    url = base_url(host, port)
    key = api_key or "none"
    auth = f" -H {shlex.quote('Authorization: Bearer ' + api_key)}" if api_key else ""
    return (
        "# curl: the models, then a transcription\n"
        f"curl{auth} {url}/models\n"
        f"curl{auth} {url}/audio/transcriptions -F file=@speech.wav -F model=default\n"
        "\n"
        "# Python (pip install openai)\n"
        "from openai import OpenAI\n"
        f'client = OpenAI(base_url="{url}", api_key="{key}")\n'
        'reply = client.chat.completions.create(model="default", '
        'messages=[{"role": "user", "content": "Hello!"}])\n'
        "print(reply.choices[0].message.content)\n"
    )
