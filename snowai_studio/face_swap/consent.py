"""Responsible use of the face swap: the first-use agreement and the mark's confirmation.

The agreement is shown once, before the first swap; the answer is kept in the settings
(``face_swap.consent_accepted``). Turning the "AI-generated" mark off asks first, with a warning.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

CONSENT_TITLE = "Before you use face swap"

CONSENT_TEXT = """\
<p><b>Face swap puts one person's face onto the faces in a photo, a video or your camera picture.</b>
It is made for creative work you have the right to make: effects for your own videos, clearly
labelled parody, trying a look on yourself, and content made together with the people shown.</p>
<ul>
<li><b>Consent.</b> Use only faces of people who agreed to it: the person whose face you put in
and the people in the picture you change.</li>
<li><b>No deception, no harm.</b> Never use it to deceive, defraud, harass or impersonate anyone,
or to make sexual or humiliating images of a real person. In many countries this is a crime.</li>
<li><b>The mark.</b> Every picture, video and live image gets a small "AI-generated" label, and saved
files say in their metadata that they were generated. Keep the mark when you share your work.</li>
</ul>
<p>Everything runs on this computer; no photo leaves it.</p>"""

CONSENT_CHECK = "I will only use faces with the consent of the people shown"

LOCKED_TEXT = (
    "Face swap is locked: it needs your agreement to the responsible-use terms. "
    "Press Review the terms… to read them again."
)

MARK_OFF_TITLE = "Turn off the AI-generated mark?"
MARK_OFF_TEXT = (
    "Without the mark, people who see your pictures and videos cannot tell that a face was swapped, "
    "and saved files no longer say that they were generated.\n\n"
    "Turn it off only for private work, or where the result is labelled as generated in another way. "
    "Publishing a swapped face as real can deceive and harm people.\n\nTurn the mark off?"
)


class ConsentDialog(QDialog):
    """What face swap is for, the consent of the people shown, the mark; Accept needs the tick."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("faceSwapConsent")
        self.setWindowTitle(CONSENT_TITLE)
        self.setModal(True)
        text = QLabel(CONSENT_TEXT)
        text.setObjectName("faceSwapConsentText")
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        text.setMinimumWidth(460)
        self.check = QCheckBox(CONSENT_CHECK)
        self.check.setObjectName("faceSwapConsentCheck")
        buttons = QDialogButtonBox()
        self.accept_button = QPushButton("Accept and continue")
        self.accept_button.setObjectName("faceSwapConsentAccept")
        self.accept_button.setEnabled(False)
        self.decline_button = QPushButton("Not now")
        buttons.addButton(self.accept_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.decline_button, QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.check.toggled.connect(self.accept_button.setEnabled)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addSpacing(6)
        layout.addWidget(self.check)
        layout.addWidget(buttons)

    def accept(self) -> None:
        if not self.check.isChecked():
            return
        super().accept()


def ask_consent(parent: QWidget | None) -> bool:
    """Show the agreement; True when the user accepted it."""
    dialog = ConsentDialog(parent)
    try:
        return dialog.exec() == QDialog.DialogCode.Accepted
    finally:
        dialog.deleteLater()


def confirm_mark_off(parent: QWidget | None) -> bool:
    """Ask before turning the mark off (No is the default answer)."""
    answer = QMessageBox.warning(
        parent,
        MARK_OFF_TITLE,
        MARK_OFF_TEXT,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes
