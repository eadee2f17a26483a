"""Settings → Local API: on/off, port, key, whether other computers may use it, face swap's terms,
and a copyable example of a client call."""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from snowai_studio.face_swap.consent import CONSENT_CHECK
from workers.api.options import DEFAULT_HOST, ApiOptions, client_example, host_problem, new_api_key

NETWORK_HOST = "0.0.0.0"


class LocalApiSection(QGroupBox):
    """The ``local_api`` settings group, edited; :meth:`save_into` writes it back."""

    def __init__(self, settings: Any, parent: QWidget | None = None) -> None:
        super().__init__("Local API", parent)
        self.setObjectName("localApiSection")
        options = settings.options(ApiOptions)
        self.enabled = QCheckBox("Serve the studio's models to other programs while the studio is open")
        self.enabled.setObjectName("localApiEnabled")
        self.enabled.setChecked(options.enabled)
        self.enabled.setToolTip(
            "OpenAI-compatible speech, transcription and chat, and background removal, face swap and voice "
            "conversion, over HTTP (the same as snowai-studio serve)."
        )
        self.port = QSpinBox()
        self.port.setObjectName("localApiPort")
        self.port.setRange(1024, 65535)
        self.port.setValue(options.port)
        self.network = QCheckBox("Let other computers on the network use it (clients must send the key)")
        self.network.setObjectName("localApiNetwork")
        self.network.setChecked(options.host not in ("127.0.0.1", "localhost", "::1"))
        self.key = QLineEdit(options.api_key)
        self.key.setObjectName("localApiKey")
        self.key.setPlaceholderText("no key (only this computer can connect)")
        self.new_key_button = QPushButton("New key")
        self.new_key_button.setObjectName("localApiNewKey")
        self.new_key_button.clicked.connect(lambda: self.key.setText(new_api_key()))
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        key_row.addWidget(self.new_key_button)
        self.consent = QCheckBox(f"Allow face swap requests ({CONSENT_CHECK})")
        self.consent.setObjectName("localApiConsent")
        self.consent.setChecked(bool(settings.face_swap.consent_accepted))
        self.consent.setToolTip(
            "Face swap answers through the API only once this is ticked; its results always carry the "
            "'AI-generated' mark. These are the face swap page's terms: accepted here, they are accepted there."
        )
        self.example = QPlainTextEdit()
        self.example.setObjectName("localApiExample")
        self.example.setReadOnly(True)
        self.example.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.example.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.example.setFixedHeight(150)
        self.copy_button = QPushButton("Copy example")
        self.copy_button.setObjectName("localApiCopy")
        self.copy_button.clicked.connect(self.copy_example)

        form = QFormLayout()
        form.addRow("Port", self.port)
        form.addRow("API key", key_row)
        layout = QVBoxLayout(self)
        layout.addWidget(self.enabled)
        layout.addLayout(form)
        layout.addWidget(self.network)
        layout.addWidget(self.consent)
        layout.addWidget(self.example)
        layout.addWidget(self.copy_button)
        for signal in (self.port.valueChanged, self.key.textChanged, self.network.toggled):
            signal.connect(self._update_example)
        self._update_example()

    def host(self) -> str:
        return NETWORK_HOST if self.network.isChecked() else DEFAULT_HOST

    def _update_example(self, *_args: Any) -> None:
        self.example.setPlainText(client_example(self.host(), self.port.value(), self.key.text().strip()))

    def copy_example(self) -> None:
        QGuiApplication.clipboard().setText(self.example.toPlainText())

    def problem(self) -> str:
        """A sentence when the choices cannot be served (another computer without a key), else ""."""
        if not self.enabled.isChecked():
            return ""
        return host_problem(self.host(), self.key.text().strip())

    def save_into(self, settings: Any) -> None:
        options = settings.options(ApiOptions)
        settings.set_options(
            dataclasses.replace(
                options,
                enabled=self.enabled.isChecked(),
                port=self.port.value(),
                host=self.host(),
                api_key=self.key.text().strip(),
            )
        )
        settings.face_swap.consent_accepted = self.consent.isChecked()
