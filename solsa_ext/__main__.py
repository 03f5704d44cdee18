"""``python -m solsa_ext ...``: see :mod:`solsa_ext.cli`."""
import sys

from .cli import main

sys.exit(main())
