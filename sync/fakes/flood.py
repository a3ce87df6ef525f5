"""A flood of connections to an HTTP endpoint, as a hostile or broken client sends it: idle
connections that send nothing, and, with `reconnect`, each opened again as soon as the
server closes it. For the metrics endpoint's tests and its benchmark."""

from __future__ import annotations

import selectors
import socket
import struct
import threading


class Flood:
    """`count` idle connections to `port` on loopback from `source` (another loopback
    address stands for another client); with `reconnect`, a thread of their own opens
    each again once the server closes it, counting them in `reopened`."""

    def __init__(self, port: int, source: str, count: int, reconnect: bool):
        self.to, self.source = ("127.0.0.1", port), source
        self.selector, self.stop, self.reopened = selectors.DefaultSelector(), False, 0
        for _ in range(count):
            self._open()
        self.thread = threading.Thread(target=self._churn, daemon=True)
        if reconnect:
            self.thread.start()

    def _open(self) -> None:
        s = socket.socket()
        # closed with a reset, not left in TIME_WAIT: thousands of those would crowd the
        # ports other programs on this machine are given
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.bind((self.source, 0))
        s.setblocking(False)
        s.connect_ex(self.to)
        if s.fileno() in self.selector.get_map():  # a number reused before it was let go
            self.selector.unregister(s.fileno())
        self.selector.register(s, selectors.EVENT_READ)

    def _churn(self) -> None:
        while not self.stop:
            for key, _ in self.selector.select(0.05):
                s: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    if s.recv(1):
                        continue
                except BlockingIOError:
                    continue
                except OSError:
                    pass  # reset: closed too
                self.selector.unregister(s)
                s.close()
                self._open()
                self.reopened += 1

    def close(self) -> None:
        self.stop = True
        if self.thread.is_alive():
            self.thread.join(10)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
