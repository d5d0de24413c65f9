"""Importing this module records that it was imported (loader tests assert it never is)."""

from __future__ import annotations

import os

os.environ["SPARK_SPEC_EVIL_IMPORTED"] = "1"


class Payload:
    """Never reached."""
