"""The pages' templates spell no path of their own: every link and form names a route
constant of ``collector.http.paths``, so a renamed route cannot leave a dead link behind
in a branch of a template that no page test happens to render."""

from __future__ import annotations

import re
from importlib import resources

from collector.http import paths
from collector.http.pages import page_path

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
