"""``python -m ai_spine``: the ``ai-spine`` command line."""

from __future__ import annotations

import sys

from ai_spine.cli import main

sys.exit(main())
