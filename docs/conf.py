"""Sphinx configuration: Markdown pages (MyST), the command-line reference
generated from the argparse parsers (sphinx-argparse), the API reference
from docstrings (autodoc), the results pages from docs/results/*.json
(_ext/results.py). `nox -s docs` builds with every warning an error, so a
link to a page or an anchor that does not exist fails the build."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "bpflab"
author = "the bpflab authors"
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinxarg.ext", "results"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "results/kernel-matrix/*.log", "results/kernel-matrix/*.xml"]
myst_heading_anchors = 3  # links to a page's headings (#a-heading), checked like links to pages
myst_enable_extensions = ["colon_fence", "deflist"]
html_theme = "alabaster"
html_theme_options = {"description": "write, build and prove XDP/eBPF programs", "fixed_sidebar": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
