"""``python -m workers.api``: the local API server alone (what the window starts as a child process)."""

from workers.api.cli import main

raise SystemExit(main())
