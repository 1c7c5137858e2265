"""Connection limits below the application, as uvicorn protocol classes: open TCP connections per client address,
a deadline for each request's head, and websockets that never wait on a client that does not read.

uvicorn builds an `http` protocol object per TCP connection and, on a websocket upgrade, hands the transport to a
`ws` protocol object; the count is kept per transport, so whichever of the two owns it when it closes releases it.
Both listeners (the main port and the TLS port) share one count.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from functools import partial
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from arena.server.settings import ServerSettings

log = logging.getLogger(__name__)
CLOSE_TIMEOUT_S = 10.0  # once the application is done with a websocket, how long its close may take (as uvicorn's)
_REFUSAL = b"too many connections from your address\n"
REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
           b"content-length: %d\r\n\r\n%s" % (len(_REFUSAL), _REFUSAL))


class PeerConnections:
    """Open connections by client address; a transport is counted once, from admission until released."""

    def __init__(self, per_address: int) -> None:
        self.per_address = per_address
        self._address_of: dict[asyncio.BaseTransport, str] = {}
        self._open: Counter[str] = Counter()

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        """Count the connection; False (not counted) when its address already has `per_address` open."""
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        if self._open[address] >= self.per_address:
            return False
        self._open[address] += 1
        self._address_of[transport] = address
        return True

    def release(self, transport: asyncio.BaseTransport) -> None:
        """Stop counting a closed connection (a second call does nothing)."""
        address = self._address_of.pop(transport, None)
        if address is not None:
            self._open[address] -= 1
            if not self._open[address]:
                del self._open[address]


class LimitedHttp(H11Protocol):
    """uvicorn's h11 protocol, refusing a connection over its address's cap (503, closed) and closing one whose
    request head has not fully arrived `header_timeout` seconds after it opened or after its last response."""

    def __init__(self, *args: Any, peers: PeerConnections, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.peers, self.header_timeout = peers, header_timeout
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Admit the connection and start waiting for a request head, or refuse it."""
        super().connection_made(transport)
        if not self.peers.admit(transport):
            log.debug("refused a connection from %s: too many open", self.client)
            transport.write(REFUSED)
            transport.close()
            return
        self._await_head()

    def data_received(self, data: bytes) -> None:
        """Parse as uvicorn does; once a request's head is in (or the socket became a websocket), stop the clock."""
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._stop_clock()

    def on_response_complete(self) -> None:
        """Wait for the next request's head on a kept-alive connection."""
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        """Release the connection's place in its address's count."""
        self._stop_clock()
        self.peers.release(self.transport)
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._stop_clock()
        self._head_deadline = self.loop.call_later(self.header_timeout, self.transport.close)

    def _stop_clock(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None


class LimitedWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's websockets protocol, releasing the connection's count when it closes. A close never waits on a
    client that does not read: one asked for while the client leaves frames unread drops the connection at once,
    and once the socket is closing (the application is done, a keepalive ping went unanswered, the server stops)
    the connection is dropped if it has not closed within CLOSE_TIMEOUT_S."""

    def __init__(self, *args: Any, peers: PeerConnections, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.peers = peers
        self._drop: asyncio.TimerHandle | None = None

    async def send(self, message: Any) -> None:
        """Send as uvicorn does, except a close while the client does not read: that drops the connection."""
        if message["type"] == "websocket.close" and self.handshake_complete and not self.writable.is_set():
            self.transport.abort()
            return
        await super().send(message)

    async def run_asgi(self) -> None:
        """Run the application, then let the close take at most CLOSE_TIMEOUT_S."""
        await super().run_asgi()
        self._drop_later()

    def keepalive_timeout(self) -> None:
        """Close as uvicorn does when a ping goes unanswered, within CLOSE_TIMEOUT_S."""
        super().keepalive_timeout()
        self._drop_later()

    def shutdown(self) -> None:
        """Close as uvicorn does when the server stops, within CLOSE_TIMEOUT_S (the server waits for it)."""
        super().shutdown()
        self._drop_later()

    def connection_lost(self, exc: Exception | None) -> None:
        """Release the connection's place in its address's count."""
        if self._drop is not None:
            self._drop.cancel()
        self.peers.release(self.transport)
        super().connection_lost(exc)

    def _drop_later(self) -> None:
        if self._drop is None and not self.disconnected:
            self._drop = self.loop.call_later(CLOSE_TIMEOUT_S, self.transport.abort)


def uvicorn_protocols(settings: ServerSettings) -> dict[str, Any]:
    """The `http` and `ws` protocol factories for uvicorn.Config; the listeners given them share one count."""
    peers = PeerConnections(settings.max_connections_per_ip)
    return {"http": partial(LimitedHttp, peers=peers, header_timeout=settings.header_timeout),
            "ws": partial(LimitedWebSocket, peers=peers)}
