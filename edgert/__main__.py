"""``python -m edgert``: the same as the ``edgert`` command."""

from edgert.cli import main

raise SystemExit(main())
