from __future__ import annotations

import pytest

from tests.packaging.deb_build import Debs, build, missing_tools


@pytest.fixture(scope="session")
def debs() -> Debs:
    """Both packages, built once per session (and cached across sessions while the inputs
    stay the same): a build takes minutes."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"Debian packaging tools missing ({', '.join(missing)}): make package-tools")
    return build()
