"""Responsible use of the face swap: the first-use agreement, the lock, and the mark's confirmation.

The agreement is shown once, before the first swap; the answer is kept in the settings
(``face_swap.consent_accepted``). Turning the "AI-generated" mark off asks first, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from snowai_studio.face_swap.page import FaceSwapPage

log = logging.getLogger(__name__)

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


class LockBanner(QFrame):
    """Above the preview while the terms are declined: why the tool is locked, and the way out."""

    review_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("faceSwapLocked")
        self.setStyleSheet(
            "#faceSwapLocked { border: 1px solid rgb(200, 120, 40); border-radius: 6px; "
            "background: rgba(200, 120, 40, 40); }"
        )
        text = QLabel(LOCKED_TEXT)
        text.setWordWrap(True)
        review = QPushButton("Review the terms…")
        review.clicked.connect(self.review_requested)
        row = QHBoxLayout(self)
        row.addWidget(text, 1)
        row.addWidget(review)
        self.hide()


class ResponsibleUse(QObject):
    """The page's side of responsible use: the agreement before the first swap (declining locks the
    page with a banner until the terms are reviewed) and the mark, which asks before it goes off.
    Both answers are kept in the settings."""

    def __init__(self, page: FaceSwapPage) -> None:
        super().__init__(page)
        self.page = page
        self.locked = False

    @property
    def settings(self) -> Any:
        return self.page.context.settings.face_swap

    @property
    def accepted(self) -> bool:
        return bool(self.settings.consent_accepted)

    def _asker(self, name: str, default: Callable[[QWidget | None], bool]) -> Callable[[QWidget | None], bool]:
        return self.page.context.extras.get(name) or default

    def ensure(self) -> bool:
        """True when the terms are accepted (asking the first time); declining locks the tool."""
        if self.accepted:
            return True
        if self.locked:
            self.page.show_message(LOCKED_TEXT, "warning")
            return False
        return self._ask()

    def review(self) -> bool:
        """Show the terms again (the way out of the lock)."""
        if self.accepted:
            self._asker("face_swap_consent", ask_consent)(self.page)
            return True
        return self._ask()

    def _ask(self) -> bool:
        page = self.page
        accepted = bool(self._asker("face_swap_consent", ask_consent)(page))
        if accepted:
            self.settings.consent_accepted = True
            page.save_settings()
            self._set_locked(False)
            page.show_message("Thank you. Face swap is ready: choose a face photo to begin.")
            log.info("Face swap: the responsible-use terms were accepted")
        else:
            self._set_locked(True)
            page.show_message(LOCKED_TEXT, "warning")
        return accepted

    def _set_locked(self, locked: bool) -> None:
        if locked == self.locked:
            return
        self.locked = locked
        self.page.lock_banner.setVisible(locked)
        if locked and self.page.live.running:
            self.page.live.stop()
        self.page.update_state()
        self.page.lock_changed.emit(locked)

    def mark_toggled(self, on: bool) -> None:
        """The mark's checkbox: turning it off asks first, and No keeps it on."""
        page = self.page
        if on == page.options.mark:
            return
        if not on and not self._asker("face_swap_confirm_mark_off", confirm_mark_off)(page):
            page.output_section.set_mark_quietly(True)
            page.show_message('The "AI-generated" mark stays on.')
            return
        page.set_option("mark", on)
        self.settings.mark = on
        page.save_settings()
        if on:
            page.show_message('The "AI-generated" mark is on again.')
        else:
            page.show_message(
                'The "AI-generated" mark is off: results no longer say they were generated. Label them yourself '
                "when you share them.",
                "warning",
            )
