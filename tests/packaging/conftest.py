from __future__ import annotations

import pytest

from tests.machine import lacking
from tests.packaging.deb_build import Debs, build, missing_tools


@pytest.fixture(scope="session")
def debs() -> Debs:
    """Both packages, built once per session (and cached across sessions while the inputs
    stay the same): a build takes minutes."""
    missing = missing_tools()
    if missing:
        lacking(f"Debian packaging tools missing ({', '.join(missing)}): make package-tools")
    return build()
