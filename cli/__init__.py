"""The ``attest`` command line: parses options, calls ``attest``/``registry``, prints results."""
