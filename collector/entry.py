"""``vigil-collector``'s entry point: a one-line answer, not a traceback, where the
collector's libraries are not installed (``pip install vigil`` installs the agent's only;
the collector's are the ``collector`` extra), then ``collector.cli``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.util import find_spec

NEEDED = {
    "aiohttp": "aiohttp",
    "apprise": "apprise",
    "argon2": "argon2-cffi",
    "boto3": "boto3",
    "holidays": "holidays",
    "jinja2": "Jinja2",
    "prometheus_client": "prometheus-client",
    "pydyf": "pydyf",
    "pyotp": "pyotp",
    "pyrage": "pyrage",
}
"""Modules the collector imports, by the distribution that provides each."""


def missing() -> list[str]:
    """The distributions of ``NEEDED`` whose module cannot be found."""
    return [dist for module, dist in NEEDED.items() if find_spec(module) is None]


def main(argv: Sequence[str] | None = None) -> int:
    lacking = missing()
    if lacking:
        print(
            f"vigil-collector: this installation lacks the collector's libraries "
            f"({', '.join(lacking)}): pip install 'vigil[collector]', or install the "
            "vigil-collector package",
            file=sys.stderr,
        )
        return 2
    from collector.cli import main as cli_main

    return cli_main(argv)
