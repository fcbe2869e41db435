"""Services that do not answer: a port nobody listens on, and one that accepts but stays silent.

``app`` is a Celery app whose broker and result backend nobody listens on (port
1 refuses), with Celery's default timeouts: the CLI tests load it by name.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from celery import Celery

REFUSED = "127.0.0.1:1"

app = Celery("unreachable", broker=f"redis://{REFUSED}/0", backend=f"redis://{REFUSED}/1")


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """``host:port`` of a socket that accepts connections (the kernel does) and never says a word.

    Closing it resets the connections it accepted, so a client still blocked
    on one gets an error instead of waiting on after the test.
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        host, port = listener.getsockname()
        yield f"{host}:{port}"


class SilencingProxy:
    """A TCP proxy to ``target`` that, once ``silence()`` is called, forwards nothing more.

    Like a broker host that vanishes without closing its connections (a
    failover, a NAT or firewall timeout): clients keep their connections and
    new ones are accepted, but no reply ever comes.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._silent = threading.Event()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets.append(self._listener)
        host, port = self._listener.getsockname()
        self.address = f"{host}:{port}"
        """``host:port`` to connect to instead of the target."""
        threading.Thread(target=self._accept, daemon=True).start()

    def silence(self) -> None:
        """From now on, drop whatever either side sends."""
        self._silent.set()

    def close(self) -> None:
        """Close every connection, which ends whoever still waits on one."""
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                self._sockets.append(client)
                if self._silent.is_set():
                    continue
                upstream = socket.create_connection(self._target)
                self._sockets.append(upstream)
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not self._silent.is_set():
                    sink.sendall(data)
