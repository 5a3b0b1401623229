"""Servers a test may kill: a private process on its own port, restarted on the same port and data."""

from __future__ import annotations

import signal
from collections.abc import Callable

from deploy.stack import Proc, wait_for_port


class Restartable:
    """A server process that can be SIGKILLed and started again on the same port and data."""

    def __init__(self, make: Callable[[], Proc], port: int, what: str) -> None:
        self.make, self.port, self.what = make, port, what
        self.proc = self.start()

    def start(self) -> Proc:
        self.proc = self.make().start()
        wait_for_port("127.0.0.1", self.port, 30, self.what)
        return self.proc

    def kill(self) -> None:
        self.proc.kill(signal.SIGKILL)
        self.proc.popen.wait(10)

    def stop(self) -> None:
        self.proc.stop()
