"""``python -m vitnas``: the same as the ``vitnas`` command."""

import sys

from vitnas.cli import main

sys.exit(main())
