from snowai_studio.cli import main

raise SystemExit(main())
