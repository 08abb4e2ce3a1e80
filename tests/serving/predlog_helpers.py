"""Helpers of the prediction-log tests: an S3 outage on demand (moto's S3 server behind a
TCP forwarder that is taken down and brought back on the same port)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.helpers import free_port

__all__ = ["LOC", "TcpOutage", "s3_outage", "wait"]


class TcpOutage:
    """A TCP forwarder to ``upstream`` on a fixed port that can be taken down (connection
    refused, open connections cut) and brought back on the same port."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._srv: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self.up()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self._srv = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def down(self) -> None:
        if self._srv is not None:
            with contextlib.suppress(OSError):
                self._srv.shutdown(socket.SHUT_RDWR)
            self._srv.close()
            self._srv = None
        for c in list(self._conns):
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        self._conns.clear()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def s3_outage(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch
              ) -> Iterator[TcpOutage]:
    """moto's S3 server (the ``s3_server`` fixture) reached through a :class:`TcpOutage`
    (``MLFLOW_S3_ENDPOINT_URL``); a fresh bucket ``predlog``."""
    import boto3

    proxy = TcpOutage(int(s3_server["endpoint"].rsplit(":", 1)[1]))
    for k, v in s3_server.items():
        if k != "endpoint":
            monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", proxy.endpoint)
    s3 = boto3.client("s3", endpoint_url=s3_server["endpoint"])
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket="predlog")
    for obj in s3.list_objects_v2(Bucket="predlog").get("Contents", []):
        s3.delete_object(Bucket="predlog", Key=obj["Key"])
    try:
        yield proxy
    finally:
        proxy.down()


def wait(cond: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


LOC = "s3://predlog/prod/predictions"
