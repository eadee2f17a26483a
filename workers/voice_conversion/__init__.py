"""Voice conversion: so-vits-svc and RVC models, and a DSP voice changer, realtime and on files (no Qt)."""
