"""Where the studio keeps its files: config, data, models, logs.

Every location follows the platform conventions (platformdirs) and can be moved with an
environment variable, so that tests and portable installs never touch the real user folders:

- ``SNOWAI_HOME``: one folder holding ``config/``, ``data/``, ``models/`` and ``logs/``;
- ``SNOWAI_CONFIG_DIR``, ``SNOWAI_DATA_DIR``, ``SNOWAI_MODELS_DIR``, ``SNOWAI_LOG_DIR``: one each,
  taking precedence over ``SNOWAI_HOME``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "SnowAI Studio"
APP_SLUG = "snowai-studio"


def _resolve(specific_var: str, home_subdir: str, default: str) -> Path:
    value = os.environ.get(specific_var)
    if value:
        return Path(value).expanduser()
    home = os.environ.get("SNOWAI_HOME")
    if home:
        return Path(home).expanduser() / home_subdir
    return Path(default)


def config_dir() -> Path:
    return _resolve("SNOWAI_CONFIG_DIR", "config", platformdirs.user_config_dir(APP_SLUG, appauthor=False))


def data_dir() -> Path:
    return _resolve("SNOWAI_DATA_DIR", "data", platformdirs.user_data_dir(APP_SLUG, appauthor=False))


def models_dir() -> Path:
    """The default model store; the settings may name another one."""
    value = os.environ.get("SNOWAI_MODELS_DIR")
    if value:
        return Path(value).expanduser()
    home = os.environ.get("SNOWAI_HOME")
    if home:
        return Path(home).expanduser() / "models"
    return data_dir() / "models"


def log_dir() -> Path:
    return _resolve("SNOWAI_LOG_DIR", "logs", platformdirs.user_log_dir(APP_SLUG, appauthor=False))


def resources_dir() -> Path:
    """The read-only resources that ship with the studio (manifest, icons, style)."""
    here = Path(__file__).resolve().parent.parent / "resources"
    return here


def wheel_members_dir() -> Path:
    """Where model files taken from published wheels lie (read-only, installed with the studio):
    ``SNOWAI_WHEEL_MEMBERS_DIR``, the bundle's own folder, or ``<prefix>/share/snowai-studio/wheel-members``."""
    override = os.environ.get("SNOWAI_WHEEL_MEMBERS_DIR")
    if override:
        return Path(override).expanduser()
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "wheel-members"
    return Path(sys.prefix) / "share" / "snowai-studio" / "wheel-members"
