"""``vigil-backup``, the partner's own tool: keys (age identities and the signing key for
recipient lists), listing, verifying, diffing and restoring backups downloaded from the
collector. It decrypts and checks signatures locally, pins each server's agent key on first
use, and trusts the collector with nothing but the bytes.
"""
