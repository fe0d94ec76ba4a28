"""Sphinx configuration of ipkit's documentation site (``make docs``).

The site is built offline from what is committed: the guides and reference pages under
``docs/``, one page per study generated from its ``results.json`` and figures by the
``ipkit_pages`` extension (``docs/_ext``), and the committed executed notebooks, rendered by
myst-nb without running them.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "ipkit"
author = "the ipkit developers"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "ipkit_pages"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "_generated/**/tables"]
nb_execution_mode = "off"  # render the committed executed notebooks; never run them here
nb_output_stderr = "remove"
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]
html_theme = "sphinx_book_theme"
html_title = "ipkit"
html_theme_options = {"show_toc_level": 2, "use_download_button": False, "use_fullscreen_button": False}
html_show_sourcelink = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}
