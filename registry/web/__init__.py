"""HTML pages over the registry's read API: search, model pages, the log and its entries.

``registry.app`` includes ``router``; templates and the stylesheet ship inside this package.
"""

from registry.web.pages import router

__all__ = ["router"]
