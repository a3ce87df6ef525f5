from sync.process.cli import main

raise SystemExit(main())
