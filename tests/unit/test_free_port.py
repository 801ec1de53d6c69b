"""Ports for local processes: never the same one twice from one process."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from deploy.local import broker


class SameTwice:
    """A socket whose kernel hands out port 5000 twice in a row, then 5001."""

    given = iter([5000, 5000, 5001])

    def __init__(self, *args: Any) -> None:
        self.port = next(self.given)

    def __enter__(self) -> SameTwice:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def bind(self, address: tuple[str, int]) -> None:
        assert address == ("127.0.0.1", 0)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


def test_a_port_the_kernel_gives_again_is_not_handed_out_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(broker, "_HANDED_OUT", set())
    monkeypatch.setattr(broker.socket, "socket", SameTwice)
    assert [broker.free_port(), broker.free_port()] == [5000, 5001]


def test_real_ports_are_distinct_and_free() -> None:
    ports = [broker.free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))  # nothing listens there
