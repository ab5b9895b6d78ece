"""uvicorn, with a shutdown that ends open streams cleanly instead of leaving them hanging.

On SIGTERM (or SIGINT) uvicorn alone stops accepting and then waits for open connections,
which a stream keeps open, and finally cancels them with no last event. Here: stop accepting,
close idle keep-alive connections, drain the app's requests (`Drain.close`: the grace period,
then streams end in their format and unanswered requests get 503), and only then let uvicorn
close what is left and run the lifespan shutdown. A SIGTERM ends the process with status 0.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from types import FrameType

import uvicorn

from service.ops.gate import Drain


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, drain: Drain, grace_s: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.grace_s = grace_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn raises a captured signal again once it is done, so the process would die of
        # SIGTERM (status 143); a drained stop is the normal way to end: exit 0.
        if sig == signal.SIGTERM and sig in self._captured_signals:
            self._captured_signals.remove(sig)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # idle keep-alive connections close now, busy ones after
        await self.drain.close(self.grace_s)
        await super().shutdown(sockets)


def serve(config: uvicorn.Config, *, drain: Drain, grace_s: float) -> None:
    """Run `config` (from `service.serving.server_config`: its bounds on clients) until a
    signal, then drain."""
    with contextlib.suppress(KeyboardInterrupt):  # a SIGINT raised again after the drain
        DrainingServer(config, drain=drain, grace_s=grace_s).run()
