"""The expression language under its old path: ``spark_core.graphs.expr`` is
:mod:`spark_core.expr`.

The language moved below ``nodes`` and ``graphs`` because the edge DSL (``nodes.edges``)
compiles conditions with it. This path stays for code that imports it; it is the very same
module object, so a setting changed through either name is seen by both.
"""

from __future__ import annotations

import sys

from spark_core import expr as _expr
from spark_core.expr import *  # noqa: F401,F403
from spark_core.expr import __all__ as __all__  # noqa: F401

sys.modules[__name__] = _expr
