"""The inspector's "Language model" section: what writes the answers (the built-in Gemma, a
transformers folder, a GGUF file or a local OpenAI-compatible server) and, for a server, its address
and which of its models answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QComboBox, QFileDialog, QLabel, QLineEdit, QWidget

from snowai_studio.assistant.options_editor import (
    BUILTIN_LLM,
    LLM_CHOICES,
    STORE_PREFIX,
    OptionsEditor,
    choice_combo,
    llm_choice,
    select_data,
    settings_form,
    side_by_side,
)
from snowai_studio.panels.tool_page import push_button
from snowai_studio.widgets.rows import fit_combo
from workers.assistant.options import AssistantOptions

SERVER_PRESETS = (
    ("Ollama", "http://127.0.0.1:11434/v1"),
    ("llama.cpp server", "http://127.0.0.1:8080/v1"),
    ("LM Studio", "http://127.0.0.1:1234/v1"),
)
GGUF_FILTER = "GGUF models (*.gguf);;All files (*)"
HINTS = {
    "builtin": (
        "Gemma 3 270M is a tiny base model: its answers are short and often wrong. For real answers get "
        "Qwen2.5 1.5B Instruct (Tools → Get started → Voice assistant), a bigger instruct model from the "
        'model manager, or use a local server such as Ollama. <a href="models">Models…</a>'
    ),
    "transformers": (
        "A Hugging Face model folder, e.g. Qwen2.5-3B-Instruct (huggingface-cli download "
        "Qwen/Qwen2.5-3B-Instruct --local-dir …). A GPU is used when present."
    ),
    "gguf": (
        "A quantised GGUF file (e.g. qwen2.5-3b-instruct-q4_k_m.gguf). With llama-cpp-python installed "
        "it runs directly; otherwise it is converted once and reused."
    ),
    "openai": (
        "Start the server first (Ollama: ollama serve, then ollama pull qwen2.5:3b) and press Refresh "
        "to list its models."
    ),
}


class LanguageModelSettings(QWidget):
    """``server_models_requested(url)`` for Refresh (the page asks the server off the UI thread);
    ``models_requested`` for the hint's link to the model manager."""

    server_models_requested = Signal(str)
    models_requested = Signal()

    def __init__(self, editor: OptionsEditor, store: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = editor
        self.store = store
        self._paths: dict[str, str] = {"transformers": "", "gguf": ""}
        #: Language models of the store listed as choices: choice -> (backend, model id).
        self._store_models: dict[str, tuple[str, str]] = {}
        self.llm_combo = choice_combo("assistantLlm", LLM_CHOICES, "What writes the answers.")
        self.llm_combo.currentIndexChanged.connect(self._on_llm_chosen)
        self.path_edit = QLineEdit()
        self.path_edit.setObjectName("assistantLlmPath")
        self.path_edit.editingFinished.connect(self._on_path_edited)
        self.path_browse = push_button("Browse…", "open")
        self.path_browse.setObjectName("assistantLlmBrowse")
        self.path_browse.clicked.connect(lambda: self.browse_llm())
        self.path_row = side_by_side(self.path_edit, self.path_browse)
        self.url_edit = QLineEdit()
        self.url_edit.setObjectName("assistantServerUrl")
        self.url_edit.setPlaceholderText(SERVER_PRESETS[0][1])
        self.url_edit.setToolTip(
            "The server's OpenAI-compatible address. "
            + ", ".join(f"{name}: {url}" for name, url in SERVER_PRESETS)
            + ". Only this address is contacted."
        )
        self.url_edit.editingFinished.connect(self._on_url_edited)
        self.url_row = self.url_edit
        self.server_model_combo = fit_combo(QComboBox(), 12)
        self.server_model_combo.setObjectName("assistantServerModel")
        self.server_model_combo.setEditable(True)
        self.server_model_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.server_model_combo.setToolTip("The model the server should answer with (empty: the server's choice).")
        self.server_model_combo.activated.connect(lambda _i: self._on_server_model())
        line = self.server_model_combo.lineEdit()
        if line is not None:
            line.setPlaceholderText("the server's default")
            line.editingFinished.connect(self._on_server_model)
        self.refresh_button = push_button("Refresh", "redo", tip="Ask the server which models it has")
        self.refresh_button.setObjectName("assistantServerRefresh")
        self.refresh_button.clicked.connect(self.request_server_models)
        self.server_model_row = side_by_side(self.server_model_combo, self.refresh_button)
        self.llm_hint = QLabel()
        self.llm_hint.setObjectName("assistantLlmHint")
        self.llm_hint.setWordWrap(True)
        self.llm_hint.setProperty("hint", True)
        self.llm_hint.setTextFormat(Qt.TextFormat.RichText)
        self.llm_hint.linkActivated.connect(lambda _link: self.models_requested.emit())
        form = settings_form(self)
        form.addRow("Model", self.llm_combo)
        form.addRow("File", self.path_row)
        self.path_label = form.labelForField(self.path_row)
        form.addRow("Server", self.url_row)
        self.url_label = form.labelForField(self.url_row)
        form.addRow("Server model", self.server_model_row)
        self.server_model_label = form.labelForField(self.server_model_row)
        form.addRow(self.llm_hint)

    def refresh_models(self, current: str = "") -> None:
        """List the store's usable language models (instruct models downloaded or shipped) as choices,
        after the built-in one; ``current`` (a model id in use) stays listed even when it is gone."""
        found: dict[str, tuple[str, str, str]] = {}
        if self.store is not None:
            try:
                states = [st for st in self.store.states() if st.model.tool == "assistant" and st.usable]
            except Exception:  # an unreadable store: the fixed choices remain
                states = []
            for st in states:
                if st.model.kind in ("gguf", "transformers") and st.model.id != BUILTIN_LLM:
                    found[STORE_PREFIX + st.model.id] = (st.model.kind, st.model.id, st.model.name)
        if current and current.startswith(STORE_PREFIX) and current not in found:
            model_id = current[len(STORE_PREFIX) :]
            found[current] = (self.editor.options.llm_backend, model_id, model_id)
        self._store_models = {key: (kind, model_id) for key, (kind, model_id, _n) in found.items()}
        with self.editor.quiet():
            keep = self.llm_combo.currentData()
            self.llm_combo.blockSignals(True)
            self.llm_combo.clear()
            self.llm_combo.addItem(LLM_CHOICES["builtin"], "builtin")
            for key, (_kind, _model_id, name) in found.items():
                self.llm_combo.addItem(name, key)
            for key, label in LLM_CHOICES.items():
                if key != "builtin":
                    self.llm_combo.addItem(label, key)
            select_data(self.llm_combo, current or keep)
            self.llm_combo.blockSignals(False)

    def show_options(self, o: AssistantOptions) -> None:
        choice = llm_choice(o)
        self.refresh_models(choice)
        if choice in self._paths:
            self._paths[choice] = str(o.llm_model)
        select_data(self.llm_combo, choice)
        self.url_edit.setText(o.server_url)
        self.server_model_combo.setEditText(o.server_model)
        self._sync_rows()

    @Slot(int)
    def _on_llm_chosen(self, _index: int) -> None:
        self._sync_rows()
        choice = self.llm_combo.currentData()
        if self.editor.updating:
            return
        if choice == "builtin":
            self.editor.set_many(llm_backend="gguf", llm_model=BUILTIN_LLM)
        elif choice in self._store_models:
            backend, model_id = self._store_models[choice]
            self.editor.set_many(llm_backend=backend, llm_model=model_id)
        elif choice == "openai":
            self.editor.set_many(llm_backend="openai")
        else:
            path = self._paths.get(choice, "")
            self.path_edit.setText(path)
            if path:
                self.editor.set_many(llm_backend=choice, llm_model=path)
            else:
                self.browse_llm()

    def _sync_rows(self) -> None:
        """Show the file row for a folder or file, the server rows for a server."""
        choice = self.llm_combo.currentData()
        local_file = choice in ("transformers", "gguf")
        server = choice == "openai"
        for widget in (self.path_row, self.path_label):
            if widget is not None:
                widget.setVisible(local_file)
        for widget in (self.url_row, self.url_label, self.server_model_row, self.server_model_label):
            if widget is not None:
                widget.setVisible(server)
        if local_file:
            if isinstance(self.path_label, QLabel):
                self.path_label.setText("Folder" if choice == "transformers" else "File")
            folder = "a folder with config.json, the tokenizer and the weights"
            self.path_edit.setPlaceholderText(folder if choice == "transformers" else "a .gguf file")
            if not self.path_edit.hasFocus():
                self.path_edit.setText(self._paths.get(choice, ""))
        self.llm_hint.setText(HINTS.get(str(choice), ""))

    @Slot()
    def _on_path_edited(self) -> None:
        choice = self.llm_combo.currentData()
        path = self.path_edit.text().strip()
        if choice in self._paths and path:
            self._paths[choice] = path
            self.editor.set_many(llm_backend=choice, llm_model=path)

    def browse_llm(self) -> None:
        choice = self.llm_combo.currentData()
        start = self._paths.get(choice) or str(Path.home())
        if choice == "transformers":
            path = QFileDialog.getExistingDirectory(self, "Choose a transformers model folder", start)
        elif choice == "gguf":
            path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model file", start, GGUF_FILTER)
        else:
            return
        if path:
            self.set_llm_path(choice, path)

    def set_llm_path(self, choice: str, path: str | Path) -> None:
        """Use a transformers folder (``choice`` "transformers") or a GGUF file ("gguf")."""
        text = str(path)
        self._paths[choice] = text
        if self.llm_combo.currentData() != choice:
            with self.editor.quiet():
                select_data(self.llm_combo, choice)
            self._sync_rows()
        self.path_edit.setText(text)
        self.editor.set_many(llm_backend=choice, llm_model=text)

    @Slot()
    def _on_url_edited(self) -> None:
        url = self.url_edit.text().strip() or SERVER_PRESETS[0][1]
        self.editor.set("server_url", url.rstrip("/"))

    @Slot()
    def _on_server_model(self) -> None:
        self.editor.set("server_model", self.server_model_combo.currentText().strip())

    @Slot()
    def request_server_models(self) -> None:
        self._on_url_edited()
        self.refresh_button.setEnabled(False)
        self.server_models_requested.emit(self.editor.options.server_url)

    def set_server_models(self, names: list[str]) -> None:
        """The server's models (after Refresh); the current choice is kept."""
        current = self.server_model_combo.currentText().strip()
        self.server_model_combo.blockSignals(True)
        self.server_model_combo.clear()
        self.server_model_combo.addItems(names)
        if current and current not in names:
            self.server_model_combo.insertItem(0, current)
        if current:
            self.server_model_combo.setCurrentText(current)
        elif names:
            self.server_model_combo.setCurrentIndex(0)
        self.server_model_combo.blockSignals(False)
        self.refresh_button.setEnabled(True)
        self._on_server_model()

    def server_models_failed(self) -> None:
        self.refresh_button.setEnabled(True)

    def use_store_model(self, kind: str, model_id: str) -> bool:
        """Answer with a language model of the store (``kind`` "gguf" or "transformers")."""
        if kind not in self._paths:
            return False
        key = STORE_PREFIX + model_id
        self.refresh_models()
        if key not in self._store_models:
            self._store_models[key] = (kind, model_id)
            self.llm_combo.addItem(model_id, key)
        with self.editor.quiet():
            select_data(self.llm_combo, key)
        self._sync_rows()
        self.editor.set_many(llm_backend=kind, llm_model=model_id)
        return True
