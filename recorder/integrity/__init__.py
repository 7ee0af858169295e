"""Integrity: the formats that make a recording evidence. SHA-256 (``_sha256_c`` and its pure
twin ``_sha256_py``), the Ed25519 device key, the BMFF reader, the sealed-segment record, the
signed manifest, request signing and ``bwv verify``'s checks. Imports only earlier layers."""
