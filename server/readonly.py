"""Read-only access for browsers: a filter over Perspective's wire protocol (pure: bytes in/out).

Every binary frame a client sends is one protobuf `perspective.proto.Request`: `msg_id = 1`,
`entity_id = 2`, then exactly one request message whose field number names the request
(perspective.md; the 4.3.0 Python client sends 33 for update, 32 for replace and for clear, 31 for
remove, 28 for a table delete, 27 to make a table). Only requests that read are passed on;
anything else, including numbers we do not know, is answered with a `Response` carrying the same
`msg_id` and a `server_error` (field 50), so the client's promise rejects at once.
"""

from __future__ import annotations

# Field numbers of the read requests in `Request.client_req` (perspective 4.3.0's proto).
READ_REQUESTS = {
    3: "get_features", 4: "get_hosted_tables", 5: "table_make_port", 6: "table_make_view",
    7: "table_schema", 8: "table_size", 9: "table_validate_expr", 10: "view_column_paths",
    11: "view_delete", 12: "view_dimensions", 13: "view_expression_schema", 14: "view_get_config",
    15: "view_schema", 16: "view_to_arrow", 17: "server_system_info", 18: "view_collapse",
    19: "view_expand", 20: "view_get_min_max", 21: "view_on_update", 22: "view_remove_on_update",
    23: "view_set_depth", 24: "view_to_columns_string", 25: "view_to_csv", 26: "view_to_rows_string",
    29: "table_on_delete", 30: "table_remove_delete", 34: "view_on_delete", 35: "view_remove_delete",
    36: "view_to_ndjson_string", 37: "remove_hosted_tables_update",
}
WRITE_REQUESTS = {27: "make_table", 28: "table_delete", 31: "table_remove", 32: "table_replace or clear",
                  33: "table_update"}
_SERVER_ERROR = 50


class Malformed(ValueError):
    """The frame is not a Perspective request."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise Malformed("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(frame: bytes):
    """(field number, varint value or length-delimited bytes) of one protobuf message."""
    pos = 0
    while pos < len(frame):
        tag, pos = _varint(frame, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise Malformed("field number 0")
        if wire == 0:
            value, pos = _varint(frame, pos)
            yield number, value
            continue
        if wire != 2:
            raise Malformed(f"unexpected wire type {wire}")
        length, pos = _varint(frame, pos)
        if pos + length > len(frame):
            raise Malformed("truncated field")
        yield number, frame[pos:pos + length]
        pos += length


def parse_request(frame: bytes) -> tuple[int, str, int]:
    """(msg_id, entity_id, request field number) of one client frame."""
    msg_id, entity, kind = 0, "", None
    for number, body in _fields(frame):
        if isinstance(body, int):
            if number == 1:
                msg_id = body
            continue
        if number == 2:
            try:
                entity = body.decode()
            except UnicodeDecodeError:
                raise Malformed("entity_id is not UTF-8") from None
        elif kind is None:
            kind = number
        else:
            raise Malformed("more than one request in a frame")
    if kind is None:
        raise Malformed("no request")
    return msg_id, entity, kind


def made_view_id(frame: bytes) -> str:
    """The id of the view a `table_make_view` frame makes: its TableMakeViewReq's field 1 (the
    4.3.0 client picks it; later requests on the view carry it as their entity_id)."""
    for number, body in _fields(frame):
        if number == 6 and isinstance(body, bytes):
            for inner, value in _fields(body):
                if inner == 1 and isinstance(value, bytes):
                    try:
                        return value.decode()
                    except UnicodeDecodeError:
                        raise Malformed("view id is not UTF-8") from None
    return ""


def request_name(kind: int) -> str:
    return READ_REQUESTS.get(kind) or WRITE_REQUESTS.get(kind) or f"request {kind}"


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def refusal(msg_id: int, entity_id: str, kind: int) -> bytes:
    """A `Response` rejecting the request: same msg_id and entity_id, a server_error message."""
    return error_response(msg_id, entity_id, f"read-only server: {request_name(kind)} is not allowed")


def error_response(msg_id: int, entity_id: str, message: str) -> bytes:
    """A `Response` with a server_error saying `message`."""
    error = _field_bytes(1, message.encode())  # ServerError.message
    return (_encode_varint(1 << 3 | 0) + _encode_varint(msg_id) + _field_bytes(2, entity_id.encode())
            + _field_bytes(_SERVER_ERROR, error))


def is_error_response(frame: bytes) -> bool:
    """The frame is a `Response` carrying a server_error (a Response has Request's layout:
    msg_id, entity_id, then one message whose field number names it)."""
    try:
        return any(number == _SERVER_ERROR and isinstance(body, bytes) for number, body in _fields(frame))
    except Malformed:
        return False
