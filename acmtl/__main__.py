from acmtl.cli import main

raise SystemExit(main())
