"""A DNS responder for tests: answers A queries for the names it is given, each with every one of
its addresses (as Docker's DNS answers for a service scaled to N replicas), NXDOMAIN otherwise.
It stands in for Docker's resolver at 127.0.0.11 where nginx's `resolver` points, so the
viewer's own nginx.conf can be tested with several servers on one machine. UDP, one thread."""

from __future__ import annotations

import socket
import struct
import threading


class DnsResponder:
    def __init__(self, records: dict[str, list[str]], ttl_s: int = 1):
        self.records = {name.lower().rstrip("."): list(addresses) for name, addresses in records.items()}
        self.ttl_s = ttl_s
        self.queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="dns", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, name: str, addresses: list[str]) -> None:
        """Change a name's addresses, as Docker does when a replica is removed or added."""
        self.records[name.lower().rstrip(".")] = list(addresses)

    def close(self) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                return  # closed
            try:
                self.sock.sendto(self.answer(query), peer)
            except (ValueError, struct.error, IndexError, OSError):
                continue  # not a query we can parse: a resolver retries or gives up

    def answer(self, query: bytes) -> bytes:
        ident, _flags, questions = struct.unpack(">HHH", query[:6])
        if questions != 1:
            raise ValueError("one question per query")
        labels, at = [], 12
        while query[at]:
            labels.append(query[at + 1:at + 1 + query[at]].decode("ascii"))
            at += 1 + query[at]
        question = query[12:at + 5]  # the name, its type and class
        qtype, _qclass = struct.unpack(">HH", query[at + 1:at + 5])
        name = ".".join(labels).lower()
        self.queries.append(name)
        addresses = self.records.get(name)
        if addresses is None:
            return struct.pack(">HHHHHH", ident, 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
        answers = b""
        if qtype == 1:  # A; anything else (AAAA) gets no answer, and the name still exists
            for address in addresses:
                answers += struct.pack(">HHHIH", 0xC00C, 1, 1, self.ttl_s, 4) + socket.inet_aton(address)
        count = len(addresses) if qtype == 1 else 0
        return struct.pack(">HHHHHH", ident, 0x8180, 1, count, 0, 0) + question + answers
