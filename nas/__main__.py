"""``python -m nas`` is the same as the ``nas`` command."""

from nas.cli import main

raise SystemExit(main())
