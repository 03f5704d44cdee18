"""Reproduction of the SOLSA paper's experiments: ``python -m solsa_ext reproduce``.

- :mod:`.tables`  which runs make up each table (accuracy, ablation, memory), presets
- :mod:`.runner`  one run = one JSON file (atomic, resumable), the training protocol
- :mod:`.memory`  measured peak training memory in a dedicated child process
- :mod:`.report`  Markdown tables, summary JSON, PNG plots
- :mod:`.cli`     ``add_reproduce_parser(subparsers)`` / ``main_reproduce(args)``

See docs/RESULTS.md.
"""
from __future__ import annotations

from .cli import add_reproduce_parser, main_reproduce, reproduce
from .tables import PAPER_SOLSA, TABLES

__all__ = ["add_reproduce_parser", "main_reproduce", "reproduce", "PAPER_SOLSA", "TABLES"]
