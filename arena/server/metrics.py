"""Prometheus metrics of one server, served at `/metrics`: games, moves, connections, move latency."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds; fine at the low end, where a healthy server's moves are.
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
                   0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)


class ServerMetrics:
    """The server's counters, in a registry of its own (several servers may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.move_latency = Histogram(
            "arena_move_latency_seconds", "From a player's action arriving to the game's next turn being sent",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.moves = Counter("arena_moves", "Actions accepted from connected players", registry=self.registry)
        self.games = Counter("arena_games", "Games ended, by status", ["status"], registry=self.registry)
        self.live_games = Gauge("arena_live_games", "Games in progress", registry=self.registry)
        self.connections = Gauge("arena_connections", "Open websocket connections on /ws", registry=self.registry)
        self._arrived: dict[int, float] = {}  # game id -> when its latest action arrived

    def action_arrived(self, game_id: int, arrived: float) -> None:
        """An action for `game_id` was accepted; `arrived` is its perf_counter() time of arrival."""
        self.moves.inc()
        self._arrived[game_id] = arrived

    def turn_sent(self, game_id: int) -> None:
        """The game's next turn frame was written to its player's socket."""
        arrived = self._arrived.pop(game_id, None)
        if arrived is not None:
            self.move_latency.observe(time.perf_counter() - arrived)

    def game_ended(self, game_id: int, status: str) -> None:
        """A game finished or was aborted."""
        self._arrived.pop(game_id, None)
        self.games.labels(status).inc()

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
