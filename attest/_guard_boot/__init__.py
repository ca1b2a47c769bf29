"""How the verify-before-load guard gets into a program: the standard-library hooks (``hooks.py``),
the bootstrap ``attest run`` starts in the program's interpreter (``boot.py``), the planner that
decides how to start a command (``launch.py``), the ``sitecustomize`` that guards the program's own
Python subprocesses (``site/``) and the per-user store of verified copies that spares an unchanged
model a second copy and hash (``store.py``)."""
