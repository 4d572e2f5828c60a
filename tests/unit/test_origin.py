"""Which browser origins may open /websocket (server/app.py origin_allowed)."""

import pytest

from server.app import origin_allowed


@pytest.mark.parametrize("origin, host, allowed, expected", [
    ("http://localhost:3000", "localhost:3000", (), True),        # the page's own origin
    ("http://LOCALHOST:3000/", "localhost:3000", (), True),
    ("http://localhost:3000", "localhost", (), False),            # another port is another origin
    ("http://evil.example", "localhost:3000", (), False),
    ("http://evil.example", None, (), False),
    ("null", "localhost:3000", (), False),                        # sandboxed frames, file:// pages
    ("http://localhost:5173", "localhost:3000", ("http://localhost:5173",), True),
    ("http://localhost:5174", "localhost:3000", ("http://localhost:5173",), False),
])
def test_origin_allowed(origin, host, allowed, expected):
    assert origin_allowed(origin, host, allowed) is expected
