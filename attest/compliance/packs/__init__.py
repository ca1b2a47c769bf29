"""Rule packs shipped as package data (YAML); loaded by ``attest.compliance.rules``."""
