"""server/source.py: every taos-ws-py call is guarded, so a lost connection is an outage to
recover from, never a crash of the reader."""

import pytest

from common.tdengine import TDengineSettings
from server import source as source_module
from server.source import Source, Unavailable, assigned_vgroups


class Block:
    def fetchall(self):
        raise source_module.taosws.ConsumerException("[0xE002] Internal error: `WebSocket connection is closed`")


class Consumer:
    def poll(self, timeout):
        return [Block()]  # a message whose blocks fail as they are fetched (seen after a restart)

    def close(self):
        pass


def source() -> Source:
    return Source(TDengineSettings("ws://localhost:6041", "root", "taosdata", "power"), "meters", "ts")


def test_a_message_that_fails_while_it_is_read_is_a_lost_connection():
    s = source()
    s.consumer = Consumer()
    with pytest.raises(Unavailable, match="connection lost.*0xE002"):
        s.poll(0.1)
    assert s.consumer is None  # dropped: the next session subscribes anew


def test_a_query_without_a_connection_is_an_outage_not_an_attribute_error():
    with pytest.raises(Unavailable, match="not connected"):
        source().rows("SELECT 1")


class Entry:
    def __init__(self, topic, vgroups):
        self._topic, self._vgroups = topic, vgroups

    def topic(self):
        return self._topic

    def assignments(self):
        return list(range(self._vgroups))


def test_assigned_vgroups_counts_only_the_topic_asked():
    assert assigned_vgroups([Entry("a", 2), Entry("b", 3)], "a") == 2
    assert assigned_vgroups([Entry("a", 0)], "a") == 0
    assert assigned_vgroups([], "a") == 0
