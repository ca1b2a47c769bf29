"""One router per resource (FastAPI's layout advice)."""
