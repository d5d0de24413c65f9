"""Sphinx configuration: the API reference, built from the code's docstrings.

The README is the guide; these pages list every public module, class and function. Build
with ``sphinx-build -W -b html docs docs/_build`` (``.ci/run`` does, warnings failing it).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document this checkout, installed or not

from ai_spine.__version__ import __version__  # noqa: E402

project = "AI Spine SDK"
author = "AI Spine Team"
copyright = "AI Spine Team"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" as a field list: a property listed there is not described twice.
napoleon_use_ivar = True
autodoc_default_options = {"show-inheritance": True}  # pages ask for :members:
autodoc_member_order = "bysource"
autodoc_typehints = "description"  # signatures stay short; types go with each argument
autodoc_class_signature = "separated"
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = f"AI Spine SDK {release}"
