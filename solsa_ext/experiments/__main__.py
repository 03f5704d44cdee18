"""``python -m solsa_ext.experiments --table ... --out DIR`` (same as ``python -m solsa_ext reproduce``)."""
import sys

from .cli import main

sys.exit(main())
