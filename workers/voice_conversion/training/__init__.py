"""Training voice models (RVC v2 and so-vits-svc 4.1) on the user's own recordings (no Qt).

- :mod:`.dataset`: a folder of recordings -> pieces of 2-15 s sliced at silences, loudness-normalised,
  with a report of what was used and what was skipped (and why);
- :mod:`.features`: ContentVec/HuBERT content and F0 per piece, cached next to the training run;
- :mod:`.presets`: the architectures' settings for the ``tiny``, ``small`` and ``full`` sizes;
- :mod:`.nets`: the training-time passes the inference networks leave out (posterior encoder, forward
  flow, random decoder segments) and the spectrogram/mel transforms;
- :mod:`.discriminators` and :mod:`.losses`: multi-period (+ scale) discriminators, LSGAN, feature
  matching, mel L1 and KL losses;
- :mod:`.trainer`: the loop (resume, cancel, checkpoints written atomically, previews, best step);
- :mod:`.export`: the originals' file formats (RVC small ``.pth`` + ``.index``; so-vits-svc
  ``G_*.pth`` + ``config.json`` + cluster model).
"""
