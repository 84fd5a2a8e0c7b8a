from edgert.cli import main

raise SystemExit(main())
