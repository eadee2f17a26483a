"""The voices the page offers: the built-in voice changer, the so-vits-svc and RVC voices imported into
the model store, and model files used before; whether the content encoder those models need is there;
and :class:`VoiceControl`, which chooses, imports and loads them through the page's worker. Files are
only looked at here: the worker loads them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QFileDialog

from snowai_studio.panels.model_picker import PickerChoice
from snowai_studio.tool_dock import open_model_manager
from snowai_studio.voice_conversion import prefs
from snowai_studio.voice_conversion.texts import (
    BUILTIN,
    BUILTIN_LABEL,
    CONFIG_FILTER,
    CONTENT_ENCODERS,
    INDEX_FILTER,
    RVC_FILTER,
    describe_pending,
    describe_voice,
    is_voice,
    model_item_label,
    strip_source,
)
from workers.voice_conversion.worker import model_label

if TYPE_CHECKING:
    from snowai_studio.voice_conversion.page import VoiceConversionPage

log = logging.getLogger(__name__)


def voice_choices(store: Any, models: list[str]) -> list[PickerChoice]:
    """The picker's list: the built-in changer (ready), the store's voices (yours; a damaged one under
    "can be downloaded" with why) and ``models`` (paths used before, the one in use first)."""
    choices = [PickerChoice(BUILTIN, BUILTIN_LABEL, "ready", "Pitch and formant shift; no model needed")]
    seen = {BUILTIN}
    if store is not None:
        try:
            voices = [m for m in store.user_models() if m.tool == "voice_conversion" and is_voice(m)]
        except Exception as exc:
            log.warning("The imported voices could not be listed: %s", exc)
            voices = []
        for model in voices:
            try:
                state = store.state(model.id)
                usable, note = state.usable, state.message
            except Exception as exc:  # a damaged entry is listed with why it cannot be used
                usable, note = False, str(exc)
            choices.append(PickerChoice(model.id, model.name, "user" if usable else "download", note, model.id))
            seen.add(model.id)
    for model in models:
        if model and model not in seen:
            choices.append(PickerChoice(model, model_item_label(model), "user", model))
            seen.add(model)
    return choices


def encoder_missing(store: Any) -> bool:
    """True when no content encoder (ContentVec or HuBERT) is ready in the store."""
    if store is None:
        return False
    for model_id in CONTENT_ENCODERS:
        try:
            if store.state(model_id).usable:
                return False
        except Exception:
            continue
    return True


class VoiceControl(QObject):
    """The voice in use and the one loading: the picker, the imports, the index and the speaker, and
    what the worker says about loading them (the voice in use stays until the new one is ready)."""

    def __init__(self, page: VoiceConversionPage) -> None:
        super().__init__(page)
        self.page = page
        self.section = page.voice
        self.active = page.options.model
        self.pending: str | None = None
        #: The index or config file loading now: ("index" or "config", path).
        self.pending_file: tuple[str, str] | None = None
        self.info: dict[str, Any] = {}
        s = self.section
        s.picker.model_chosen.connect(self.set_model)
        s.picker.get_requested.connect(lambda _id: self.open_model_manager())
        s.picker.refresh_requested.connect(self.refresh)
        s.import_sovits_requested.connect(lambda: self.import_sovits())
        s.import_rvc_requested.connect(lambda: self.import_rvc())
        s.index_requested.connect(lambda: self.choose_index())
        s.index_cleared.connect(lambda: self.set_index(""))
        s.config_requested.connect(lambda: self.choose_config())
        s.config_cleared.connect(lambda: self.set_file("config", ""))
        s.manager_requested.connect(self.open_model_manager)
        s.speaker_chosen.connect(lambda n: page.set_option("speaker", n))
        s.index_ratio.value_changed.connect(lambda x: page.set_option("index_ratio", x))

    def refresh(self) -> None:
        """The voice list again (the store may have new voices), keeping the one shown."""
        shown = self.pending if self.pending is not None else self.active
        store = self.page.context.model_store
        choices = voice_choices(store, [self.active, shown, *prefs.recent_models()])
        self.section.picker.set_choices(choices, select=shown)
        self.section.show_encoder_need(bool(shown) and encoder_missing(store))

    def open_model_manager(self) -> None:
        open_model_manager(self.page, self.page.context.model_store)

    def _ask(self, key: str, title: str, filter_: str | None = None) -> str | None:
        page = self.page
        ask: Callable[..., Any] | None = page.context.extras.get(key)
        if ask is not None:
            return ask(page, title) if filter_ is None else ask(page, title, filter_)
        if filter_ is None:
            return QFileDialog.getExistingDirectory(page, title, str(Path.home())) or None
        return QFileDialog.getOpenFileName(page, title, str(Path.home()), filter_)[0] or None

    def import_sovits(self, folder: str | Path | None = None) -> bool:
        chosen = folder or self._ask("svc_choose_folder", "Choose a so-vits-svc model folder (config.json and G_*.pth)")
        if not chosen:
            return False
        path = Path(chosen).expanduser()
        if not (path / "config.json").is_file() and path.is_dir():
            self.page.show_message(
                f"{path.name} has no config.json; choose the folder that holds config.json and a G_*.pth file.",
                "error",
            )
            return False
        return self.set_model(str(path))

    def import_rvc(self, path: str | Path | None = None) -> bool:
        chosen = path or self._ask("svc_choose_file", "Choose an RVC model", RVC_FILTER)
        return bool(chosen) and self.set_model(str(Path(chosen).expanduser()))

    @Slot(str)
    def set_model(self, model: str) -> bool:
        model = str(model or "")
        page = self.page
        if model == self.active and self.pending is None and page.worker is not None:
            return True
        self.pending = model
        page.options.model = model
        worker = page.ensure_worker()
        label = model_label(page.options)
        if model != self.active or not self.info:
            self.section.info_label.setText(f"Loading {label}…")
            page.show_message(f"Loading {label}…")
        worker.set_param("model", model)
        self.refresh()
        return True

    def choose_index(self, path: str | Path | None = None) -> bool:
        chosen = path or self._ask("svc_choose_file", "Choose a feature index or cluster model", INDEX_FILTER)
        if not chosen:
            return False
        self.set_file("index", str(Path(chosen).expanduser()))
        return True

    def choose_config(self, path: str | Path | None = None) -> bool:
        chosen = path or self._ask("svc_choose_file", "Choose a so-vits-svc config", CONFIG_FILTER)
        if not chosen:
            return False
        self.set_file("config", str(Path(chosen).expanduser()))
        return True

    def set_index(self, path: str) -> None:
        self.set_file("index", path)

    def set_file(self, name: str, path: str) -> None:
        """Use another ``index`` or ``config`` file ("" for none); the voice reloads with it."""
        page = self.page
        setattr(page.options, name, path)
        self.show()
        if page.worker is not None or path:
            self.pending_file = (name, path)
            page.ensure_worker().set_param(name, path)
            if path:
                page.show_message(f"Loading the {name} {Path(path).name}…")
        page.schedule_save()

    @property
    def pending_index(self) -> str | None:
        """The index loading now (None when none is)."""
        return self.pending_file[1] if self.pending_file and self.pending_file[0] == "index" else None

    @Slot(dict)
    def on_loaded(self, info: dict) -> None:
        page, options = self.page, self.page.options
        self.info = dict(info)
        self.active = str(info.get("model", ""))
        if self.pending is not None and self.pending != self.active:
            # The voice the worker started with is ready; the one chosen since is still loading.
            self.show()
            page.model_changed.emit(dict(info))
            return
        options.model = self.active
        options.index = str(info.get("index", options.index))
        options.config = str(info.get("config", options.config))
        options.speaker = int(info.get("speaker", options.speaker) or 0)
        was_pending = self.pending is not None
        self.pending = None
        prefs.remember_model(self.active)
        self.refresh()
        self.show()
        page.schedule_save()
        if was_pending:
            follow = "You hear it live now." if page.live_running else "Press Start live, or convert recordings."
            page.show_message(f"{info.get('label', 'The voice')} is ready. {follow}")
        elif self.pending_file is not None and self.pending_file[1] == getattr(options, self.pending_file[0]):
            name, path = self.pending_file
            page.show_message(f"The {name} {Path(path).name} is in use." if path else f"No {name} is used now.")
        self.pending_file = None
        page.model_changed.emit(dict(info))

    @Slot(str)
    def on_failed(self, message: str) -> None:
        self.pending = None
        self.pending_file = None
        self.page.options.model = self.active
        self.page.options.index = str(self.info.get("index", ""))
        self.page.options.config = str(self.info.get("config", ""))
        self.refresh()
        self.show()
        self.page.show_message(strip_source(message), "error")

    def show(self) -> None:
        """The voice's rows (info, index, speakers), the controls that fit it, and what Convert writes."""
        page, info = self.page, self.info
        builtin = not self.active
        if self.pending is None:
            self.section.info_label.setText(describe_voice(info) if info else describe_pending(self.active))
            self.section.info_label.setToolTip(self.active)
        page.pitch_controls.show_voice_kind(builtin)
        kind = "" if builtin else str(info.get("kind", "") or "model")
        self.section.show_files(page.options.index, page.options.config, kind)
        self.section.show_speakers(dict(info.get("speakers") or {}) if not builtin else {}, page.options.speaker)
        page.live_view.show_pitch(page.options.pitch, model_label(page.options))
        page.jobs.show_summary()

    def imported(self, model_id: str) -> None:
        """A voice imported in the model manager is used at once (an encoder only updates the list)."""
        self.refresh()
        picker = self.section.picker
        if picker.current_key() != model_id and picker.select(model_id, emit=False):
            self.set_model(model_id)
