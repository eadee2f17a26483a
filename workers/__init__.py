"""Everything that runs off the UI thread: engines (no Qt), their Qt workers, media and models."""
