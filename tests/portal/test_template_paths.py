"""The pages' templates spell no path of their own: every link and form names a route
constant of ``collector.http.paths``, so a renamed route cannot leave a dead link behind
in a branch of a template that no page test happens to render."""

from __future__ import annotations

import asyncio
import re
from importlib import resources
from pathlib import Path

import jinja2

from collector.http import paths
from collector.http.pages import page_path
from harness.app import app_client

TEMPLATES = resources.files("collector").joinpath("templates")


def _sources() -> dict[str, str]:
    return {f.name: f.read_text() for f in TEMPLATES.iterdir() if f.name.endswith(".html")}


def test_every_route_a_template_names_exists_and_no_template_spells_a_path() -> None:
    named = {
        (name, route)
        for name, text in _sources().items()
        for route in re.findall(r"path\('([A-Z_]+)'", text)
    }
    assert len(named) > 30, named  # the links and forms of every page
    assert {r for _n, r in named if not isinstance(getattr(paths, r, None), str)} == set()
    spelled = {
        (name, literal)
        for name, text in _sources().items()
        for literal in re.findall(r'(?:href|action|src|value)="(/[^"]*)"', text)
    }
    assert spelled == set()


def test_page_path_fills_and_quotes_the_parts() -> None:
    assert page_path("SERVER_PAGE", server_id="srv_1") == "/servers/srv_1"
    assert page_path("STATIC", name="vigil.css") == "/static/vigil.css"
    # A part can never reach another route: a slash or a query in it is quoted.
    assert page_path("SERVER_PAGE", server_id="a/../b?x=1") == "/servers/a%2F..%2Fb%3Fx%3D1"


def test_every_template_is_compiled_when_the_collector_starts(tmp_path: Path) -> None:
    """So the first request of each page after a start does not pay for compiling it."""
    from collector.http import pages

    pages._env.cache.clear()  # other tests in this process may have rendered some

    async def started() -> set[str]:
        async with app_client(tmp_path):
            return {name for name in _sources() if _compiled(pages._env, name)}

    assert asyncio.run(started()) == set(_sources())


def _compiled(env: jinja2.Environment, name: str) -> bool:
    return any(key[1] == name for key in env.cache)
