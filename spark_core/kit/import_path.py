"""Where the command-line programs import the user's own modules from.

``spark-spec export MODULE:FACTORY``, ``spark-spec simulation-run``/``mission-deploy
--allow-module PREFIX`` and ``ai-spine serve --flows MODULE:OBJECT``/``--allow-module PREFIX``
import modules their arguments name. They all find them as ``python -m`` does: the current
directory first. Only the programs call this; a library call never changes ``sys.path``.
"""

from __future__ import annotations

import os
import sys

__all__ = ["current_directory_first"]


def current_directory_first() -> None:
    """Put the current directory first on ``sys.path``, unless it is on it already.

    ``""`` (what ``python -m`` and ``python -c`` put there) counts as the current directory.
    """
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)
