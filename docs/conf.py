"""Sphinx configuration of the h5stream documentation (MyST Markdown pages, autodoc of the public API).

Build: ``sphinx-build -W -b html docs docs/_build/html`` (``pip install "h5stream[docs]"``: the extra added
to the installed package, which is not rebuilt).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs" / "_ext"))  # executed_examples: the pages' examples run at build time
try:
    import h5stream  # the installed package, with its compiled kernels
except ImportError:  # a checkout that was never installed: autodoc reads the sources (built in place)
    sys.path.insert(0, str(ROOT / "src"))
    import h5stream

project = "h5stream"
author = "h5stream developers"
copyright = "h5stream developers"
release = h5stream.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "executed_examples",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autosummary_generate = False
napoleon_numpy_docstring = True
napoleon_google_docstring = False
# Cross-references inside docstrings name many private helpers and third-party types that are not
# part of this site; only the references that Sphinx can resolve become links.
nitpicky = False

try:
    import pydata_sphinx_theme  # noqa: F401
except ImportError:  # the default theme builds the same pages
    html_theme = "alabaster"
else:
    html_theme = "pydata_sphinx_theme"
    # The header lists the sections (Getting started, Guides, Command line, Reference) and marks the
    # reader's; the left column lists the pages of that section and marks the reader's page; the
    # breadcrumbs above each page say the same in words.
    html_theme_options = {
        "navigation_with_keys": False,
        "show_toc_level": 2,
        "header_links_before_dropdown": 6,
        "show_nav_level": 1,
        "navigation_depth": 3,
        "secondary_sidebar_items": ["page-toc"],
        "footer_start": ["copyright"],
        "footer_end": [],
    }
    html_sidebars = {"**": ["sidebar-nav-bs"], "index": []}
    # A page opened from disk (file://) has no stored colour mode; without a default the theme's
    # script logs "Got invalid theme mode" as an error in the browser's console.
    html_context = {"default_mode": "light"}
html_title = "h5stream"
html_static_path = ["_static"]
html_css_files = ["fit.css"]  # code blocks wrap instead of being cut off
