"""Services that do not answer: a port nobody listens on, and one that accepts but stays silent.

``app`` is a Celery app whose broker and result backend nobody listens on (port
1 refuses), with Celery's default timeouts: the CLI tests load it by name.
"""

from __future__ import annotations

import contextlib
import socket
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
