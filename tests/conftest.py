"""Session-wide test configuration.

Area-specific fixtures live in ``tests/<area>_fixtures.py`` modules listed here, so that parallel
work on different areas never edits the same lines.
"""

from __future__ import annotations

import os

# torch's default two intra-op threads thrash on a shared 2-core machine (see shared notes/scanning.md).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The guard's verified store (attest/_guard_boot/store.py) goes to a per-session folder, never ~/.cache.
if "ATTEST_GUARD_STORE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["ATTEST_GUARD_STORE"] = tempfile.mkdtemp(prefix="attest-test-guard-store-")
    atexit.register(shutil.rmtree, os.environ["ATTEST_GUARD_STORE"], True)

pytest_plugins: list[str] = [
    "tests.scan_fixtures",
    "tests.core_fixtures",
    "tests.e2e_fixtures",
    "tests.sigstore_fixtures",
    "tests.constitution_fixtures",
    "tests.compliance_fixtures",
    "tests.registry_fixtures",
]
