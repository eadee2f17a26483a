"""Qt dialogs of the studio."""
