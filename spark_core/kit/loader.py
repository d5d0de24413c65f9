"""The spec loader under the seed's path: ``spark_core.kit.loader`` is
:mod:`spark_core.spec.loader`.

The loader moved into the spec package because the spec tools (simulation, deploy checks)
run what it builds; kept here, kit and spec imported each other. This path stays for code
that imports it; it is the very same module object, so a name patched through either path
is seen by both.
"""

from __future__ import annotations

import sys

from spark_core.spec import loader as _loader
from spark_core.spec.loader import *  # noqa: F401,F403
from spark_core.spec.loader import __all__ as __all__  # noqa: F401

sys.modules[__name__] = _loader
