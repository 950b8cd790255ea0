"""An S3-compatible store on 127.0.0.1: moto's S3 API server on a free port, buckets made
on it, and the ``[backup.storage]`` table that points a collector (a process or in this
process) at one. Credentials are moto's placeholders; nothing leaves the loopback."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import Any

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def new_bucket(endpoint: str) -> str:
    """A new, empty bucket on the server at ``endpoint``; its name."""
    name = f"vigil-{secrets.token_hex(6)}"
    client = s3_client(endpoint)
    client.create_bucket(Bucket=name)
    client.close()
    return name


def s3_config(endpoint: str, bucket: str, **more: object) -> dict:
    """The ``[backup.storage]`` table for ``bucket`` (keys under ``vigil/test/``)."""
    return {
        "kind": "s3",
        "endpoint_url": endpoint,
        "bucket": bucket,
        "prefix": "vigil/test",
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "addressing_style": "path",
        **more,
    }


def storage_toml(config: dict) -> str:
    """``config`` as a ``[backup.storage]`` TOML table (for a collector process)."""
    lines = ["[backup.storage]"]
    for key, value in config.items():
        lines.append(f"{key} = {value!r}".replace("'", '"'))
    return "\n".join(lines) + "\n"
