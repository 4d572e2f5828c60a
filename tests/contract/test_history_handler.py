"""The history handler under hostile or unlucky clients (issue 13), on the fake and a real
TDengine: refused clearly, the database unchanged."""

from __future__ import annotations

import perspective
import pytest

from server.history.database import HistoryDatabase
from server.history.handler import HistoryHandler
from server.history.views import Limits

from .conftest import now_ms


def client_for(td, max_views=5, max_rows=100):
    handler = HistoryHandler(HistoryDatabase(td.settings, driver=td.taosws), Limits(50, 20, max_rows),
                             max_views=max_views)
    server = perspective.VirtualServer(handler)
    client = None

    def send(message):
        client.handle_response(server.handle_request(message))

    client = perspective.Client(send)
    return client


def test_an_empty_database_offers_no_table_and_a_missing_one_is_refused_by_name(td):
    conn = td.connect()
    conn.execute(f"CREATE DATABASE IF NOT EXISTS {td.db}")
    client = client_for(td)
    assert client.get_hosted_table_names() == []
    with pytest.raises(Exception, match="meters_history"):
        client.open_table("meters_history").view(columns=["current"]).to_columns()


def test_giant_viewports_too_many_views_and_groups_are_refused_and_change_nothing(td):
    conn = td.meters()
    ts = now_ms()
    values = " ".join(f"{td.db}.d{i} USING {td.db}.meters TAGS ({i}, 'L{i % 3}') VALUES ({ts}, 1.5, 220, 0.25) "
                      f"({ts + 1}, 2.5, 221, 0.5)" for i in range(60))
    conn.execute(f"INSERT INTO {values}")
    client = client_for(td)
    table = client.open_table("meters_history")
    flat = table.view(columns=["current"])
    assert flat.num_rows() == 120
    with pytest.raises(Exception, match="SERVER_HISTORY_MAX_ROWS"):
        flat.to_columns(start_row=0, end_row=1_000_000)   # 120 rows, 100 at most at once
    assert len(flat.to_columns(start_row=20, end_row=120)["current"]) == 100
    flat.delete()
    with pytest.raises(Exception, match="SERVER_HISTORY_MAX_GROUPS"):
        table.view(columns=["current"], group_by=["tbname"])   # 60 meters, 50 groups allowed
    with pytest.raises(Exception, match="only bucket"):
        table.view(columns=["current"], expressions={"x": "\"current\"; DROP DATABASE x"})
    with pytest.raises(Exception, match="not offered"):
        table.view(columns=["current"], group_by=["location"], aggregates={"current": "distinct count"})
    views = [table.view(columns=["current"], group_by=["location"]) for _ in range(5)]
    with pytest.raises(Exception, match="SERVER_HISTORY_MAX_VIEWS"):
        table.view(columns=["current"])
    views[0].delete()
    assert table.view(columns=["current"], group_by=["location"]).num_rows() == 4  # a freed slot is usable
    assert list(conn.query(f"SELECT COUNT(*) FROM {td.db}.meters")) == [(120,)]
