"""``python -m vitnas.cli``: the same as the ``vitnas`` command."""

from vitnas.cli import main

raise SystemExit(main())
