"""The read-only filter, on frames the real Perspective 4.3.0 Python client sends."""

import asyncio

import perspective
import pytest

from server import readonly


def client_frames(operation) -> list[bytes]:
    """Frames the Python client sends for `operation(client, table)`, against a real server."""
    server = perspective.Server()
    server.new_local_client().table({"a": [1, 2]}, name="t", index="a")
    frames = []

    async def run():
        replies = []
        session = server.new_session(replies.append)

        async def send(frame):
            frames.append(frame)
            session.handle_request(frame)
            while replies:
                await client.handle_response(replies.pop(0))

        client = perspective.AsyncClient(send)
        table = await client.open_table("t")
        frames.clear()
        try:
            await operation(client, table)
        except perspective.PerspectiveError:
            pass

    asyncio.run(run())
    return frames


WRITES = {
    "update": (lambda c, t: t.update({"a": [3]}), 33),
    "replace": (lambda c, t: t.replace({"a": [4]}), 32),
    "clear": (lambda c, t: t.clear(), 32),
    "remove": (lambda c, t: t.remove([1]), 31),
    "delete": (lambda c, t: t.delete(), 28),
    "make table": (lambda c, t: c.table({"b": [1]}, name="new"), 27),
}


@pytest.mark.parametrize("name", WRITES)
def test_writes_are_recognised_and_not_allowed(name):
    operation, number = WRITES[name]
    kinds = [readonly.parse_request(frame)[2] for frame in client_frames(operation)]
    assert number in kinds
    assert number not in readonly.READ_REQUESTS


async def reads(client, table):
    await table.size()
    await table.schema()
    view = await table.view(group_by=["a"])
    await view.to_columns()
    await view.to_arrow()
    await view.dimensions()
    await view.delete()
    await client.get_hosted_table_names()


def test_reads_are_allowed():
    frames = client_frames(reads)
    assert len(frames) >= 7
    assert all(readonly.parse_request(frame)[2] in readonly.READ_REQUESTS for frame in frames)


def test_a_refusal_rejects_the_clients_promise_with_our_message():
    server = perspective.Server()
    server.new_local_client().table({"a": [1]}, name="t")
    errors = []

    async def run():
        replies = []
        session = server.new_session(replies.append)

        async def send(frame):
            msg_id, entity, kind = readonly.parse_request(frame)
            replies.append(session_reply(frame) if kind in readonly.READ_REQUESTS
                           else readonly.refusal(msg_id, entity, kind))
            while replies:
                await client.handle_response(replies.pop(0))

        def session_reply(frame):
            out = []
            own = server.new_session(out.append)
            own.handle_request(frame)
            return out[0]

        client = perspective.AsyncClient(send)
        table = await client.open_table("t")
        try:
            await table.update({"a": [2]})
        except perspective.PerspectiveError as error:
            errors.append(str(error))

    asyncio.run(run())
    assert errors and "read-only server: table_update is not allowed" in errors[0]
    assert server.new_local_client().open_table("t").size() == 1


@pytest.mark.parametrize("frame", [b"", b"\xff\xff\xff", b"garbage!", b"\x08\x01", b"\x08\x01\x12\x05ab",
                                   b"\x08\x01\x3a\x00\x42\x00", b"\x0d\x00\x00\x00\x00"])
def test_malformed_frames_are_rejected(frame):
    with pytest.raises(readonly.Malformed):
        readonly.parse_request(frame)
