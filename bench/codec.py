"""Per-report costs on the ingest path, each alone: decoding and authenticating.

    .venv/bin/python bench/codec.py

Prints microseconds per 64-camera report (the body `bench/ingest.py` sends) for:
msgspec decode into the protocol's structs, stdlib json.loads (dicts only, no
validation), the camera digest, Ed25519 verify, and HMAC-SHA256 over the body's hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ingest import report_body

from protocol.camera_digest import cameras_digest
from protocol.messages import ReportBatch, decode


def per_call_us(fn, n: int = 3000) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    body = report_body(1, 5, 64, "changing")  # the inventory in every report
    batch = decode(body, ReportBatch)
    cams = batch.reports[0].cameras or []
    key = Ed25519PrivateKey.generate()
    sig, pub = key.sign(body), key.public_key()
    mac_key = b"k" * 32
    rows = {
        "msgspec decode + validate": per_call_us(lambda: decode(body, ReportBatch)),
        "json.loads (no validation)": per_call_us(lambda: json.loads(body)),
        "camera digest (64 cameras)": per_call_us(lambda: cameras_digest(cams)),
        "Ed25519 verify of the body": per_call_us(lambda: pub.verify(sig, body)),
        "HMAC-SHA256 over SHA-256(body)": per_call_us(
            lambda: hmac.new(mac_key, hashlib.sha256(body).digest(), hashlib.sha256).digest()
        ),
    }
    print(f"body: {len(body)} bytes, 64 cameras")
    for name, us in rows.items():
        print(f"{name:34} {us:8.1f} µs")


if __name__ == "__main__":
    main()
