"""Keyboard shortcuts (F1): every shortcut of the window and of each tool page, read from the actions
themselves so that the list is never out of date."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget


class ShortcutsDialog(QDialog):
    def __init__(self, groups: dict[str, list[tuple[str, str]]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Shortcut", "What it does"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for where, rows in groups.items():
            if not rows:
                continue
            heading = QTreeWidgetItem([where, ""])
            font = heading.font(0)
            font.setBold(True)
            heading.setFont(0, font)
            heading.setFirstColumnSpanned(True)
            self.tree.addTopLevelItem(heading)
            heading.setFirstColumnSpanned(True)
            for keys, what in rows:
                self.tree.addTopLevelItem(QTreeWidgetItem([f"   {keys}", what]))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree)
        layout.addWidget(buttons)
        self.resize(560, 520)

    def rows(self) -> list[tuple[str, str]]:
        """(shortcut, what) of every listed shortcut (headings left out)."""
        out = []
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.text(1):
                out.append((item.text(0).strip(), item.text(1)))
        return out
