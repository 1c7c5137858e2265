"""Soak the arena server: N websocket clients in continuous games for T minutes, watching memory, errors and losses.

Starts the real `arena serve` in a subprocess (a fresh SQLite database in a temporary folder, or --db) and
opens --clients guest connections from one asyncio loop. Every client queues for TicTacToe-v0, plays the
game with the first valid move at once, and queues again, until --minutes have passed; then each finishes
the game it is in. Printed: moves/s (acked actions), the p99 latency from sending an action to its `ack`,
the server's RSS (with its child processes) after the warm-up and at the end, errors (error frames,
refused or dropped connections), and games finished or lost (matched but never over, or aborted). At the
end the database is read: every game the clients saw finish must be stored `finished`, none `running`.

Targets, compared in the same run: RSS growth after warm-up <= 10% of the warm-up RSS, zero errors, zero
lost games. The exit status is 0 when every target is met, 2 when one is missed, 1 when nothing could be
measured (the server did not start, or the run passed --timeout).

Run: .venv/bin/python benchmarks/soak.py [--clients 1000] [--minutes 10] [--db URL] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from server_load import BATCH, BenchError, health_ok, percentile, raise_fd_limit, stop_process, tail, verdict
from sqlalchemy import func, select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from arena.store.database import open_database
from arena.store.models import EpisodeRow
from arena.testing.ports import free_port

ENV_ID = "TicTacToe-v0"
TARGET_RSS_GROWTH = 0.10
RSS_EVERY_S = 5.0
DRAIN_S = 120.0  # after the deadline, how long the clients may take to finish their last games
LEAVE_AFTER_S = 5.0  # a client still queued at the deadline leaves; a match may still come meanwhile


@dataclass
class Soak:
    """What the clients saw, and the server's memory over time."""

    moves: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, action -> its ack
    matched: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)
    aborted: dict[int, str] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    last: dict[int, str] = field(default_factory=dict)  # client -> the last thing it sent or received, and when
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, bytes)
    started: float = 0.0
    deadline: float = 0.0

    def error(self, code: str, text: str) -> None:
        """Count one error and keep its first few descriptions."""
        self.errors[code] += 1
        if len(self.problems) < 20:
            self.problems.append(text[:1000])


def rss_bytes(pid: int) -> int:
    """Resident memory of process `pid` and its descendants (the database writer), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, grew = {pid}, True
    while grew:
        children = {p for p, parent in parents.items() if parent in tree} - tree
        tree, grew = tree | children, bool(children)
    total = 0
    for p in tree:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


async def watch_memory(pid: int, soak: Soak) -> None:
    """Sample the server's RSS every RSS_EVERY_S seconds."""
    while True:
        soak.rss.append((time.perf_counter() - soak.started, rss_bytes(pid)))
        await asyncio.sleep(RSS_EVERY_S)


async def client(i: int, url: str, soak: Soak, connected: asyncio.Future[None]) -> None:
    """One guest: hello, then queue and play games back to back until the deadline."""
    try:
        async with connect(url, open_timeout=120, max_queue=None) as ws:
            await ws.send(json.dumps({"type": "hello", "guest": f"soak{i}"}))
            welcome = json.loads(await ws.recv())
            connected.set_result(None)
            if welcome.get("type") != "welcome":
                soak.error(welcome.get("code", "no_welcome"), f"soak{i}: {welcome}")
                return
            while time.perf_counter() < soak.deadline and await queue_and_play(ws, i, soak):
                pass
    except Exception as error:  # noqa: BLE001 - every failure is counted, none stops the others
        soak.error(type(error).__name__, f"soak{i}: {type(error).__name__}: {error}")
    finally:
        if not connected.done():
            connected.set_result(None)


async def queue_and_play(ws: ClientConnection, i: int, soak: Soak) -> bool:
    """Queue for one game and play it; false once this client is done."""
    await ws.send(json.dumps({"type": "queue", "envs": [ENV_ID]}))
    soak.last[i] = f"sent queue at {time.perf_counter() - soak.started:.1f} s"
    return await play_one(ws, i, soak)


async def play_one(ws: ClientConnection, i: int, soak: Soak) -> bool:
    """Play one game to its game_over; false if the connection ended, the server refused, or the run ended
    before a match came (the client then leaves the queue)."""
    sent: float | None = None
    matched = left = False
    while True:
        wait = None if matched else LEAVE_AFTER_S if left else max(soak.deadline - time.perf_counter(), LEAVE_AFTER_S)
        try:
            raw = await asyncio.wait_for(ws.recv(), wait)
        except TimeoutError:
            if left:
                return False
            await ws.send(json.dumps({"type": "leave"}))
            left = True
            continue
        except ConnectionClosed as closed:
            soak.error("closed", f"soak{i}: the server closed the connection ({closed})")
            return False
        message = json.loads(raw)
        soak.last[i] = f"received {raw[:120]} at {time.perf_counter() - soak.started:.1f} s"
        match message.get("type"):
            case "match":
                soak.matched.add(message["game_id"])
                matched = True
            case "turn":
                sent = time.perf_counter()
                await ws.send(json.dumps({"type": "action", "game_id": message["game_id"],
                                          "action": message["moves"][0]}))
            case "ack":
                soak.moves += 1
                if sent is not None:
                    soak.latencies.append(time.perf_counter() - sent)
                    sent = None
            case "game_over":
                (soak.finished.add(message["game_id"]) if message["status"] == "finished"
                 else soak.aborted.setdefault(message["game_id"], message["reason"]))
                return True
            case "error" | "shutdown":
                soak.error(message.get("code", message["type"]), f"soak{i}: {raw}")
                return False


async def connect_all(args: argparse.Namespace, url: str, soak: Soak) -> list[asyncio.Task[None]]:
    """Open the clients BATCH at a time; each batch is connected before the next starts."""
    tasks: list[asyncio.Task[None]] = []
    for first in range(0, args.clients, BATCH):
        futures = [asyncio.get_running_loop().create_future() for _ in range(min(BATCH, args.clients - first))]
        tasks += [asyncio.create_task(client(first + k, url, soak, f)) for k, f in enumerate(futures)]
        await asyncio.gather(*futures)
    return tasks


async def start_server(args: argparse.Namespace, tmp: Path, port: int) -> subprocess.Popen:
    """`arena serve` on the database. The clients pair with each other; the match-quality bar falls to zero over
    the house wait (20 s), so the last two clients queued pair however far apart their ratings (a one-hour
    wait left them queued past the drain), and only a client left alone meets house `random`."""
    command = [str(Path(sys.executable).parent / "arena"), "serve", "--port", str(port),
               "--tls-port", str(free_port(besides=port)), "--db", args.db, "--house", "random",
               "--house-wait", "20", "--move-timeout", "120"]
    with (tmp / "arena.out").open("wb") as out, (tmp / "arena.err").open("wb") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    while not await asyncio.to_thread(health_ok, port):
        if proc.poll() is not None:
            raise BenchError(f"the arena server exited with status {proc.returncode} before it was ready")
        await asyncio.sleep(0.1)
    return proc


async def soak_server(args: argparse.Namespace, port: int, pid: int, soak: Soak) -> float:
    """Connect, play until the deadline, let the last games finish; the seconds of play."""
    soak.started = begin = time.perf_counter()
    soak.deadline = begin + 60 * args.minutes
    memory = asyncio.create_task(watch_memory(pid, soak))
    tasks = await connect_all(args, f"ws://127.0.0.1:{port}/ws", soak)
    try:
        done, pending = await asyncio.wait(tasks, timeout=60 * args.minutes + DRAIN_S)
        for task in pending:
            task.cancel()
        if pending:
            stuck = [soak.last.get(tasks.index(task), "nothing") for task in list(pending)[:3]]
            soak.error("drain", f"{len(pending)} clients still in a game {DRAIN_S:g} s after the deadline; "
                                f"the last each received: {stuck}")
        return time.perf_counter() - begin
    finally:
        memory.cancel()
        soak.rss.append((time.perf_counter() - soak.started, rss_bytes(pid)))


def stored(url: str) -> dict[str, int]:
    """How many episodes the database holds in each status."""
    engine = open_database(url)
    try:
        with engine.connect() as connection:
            return dict(connection.execute(select(EpisodeRow.status, func.count()).group_by(EpisodeRow.status)).all())
    finally:
        engine.dispose()


@dataclass
class Figures:
    """The printed results (also written as JSON with --json)."""

    clients: int
    minutes: float
    moves_per_s: float
    p99_ms: float
    rss_start_mb: float
    rss_warm_mb: float
    rss_end_mb: float
    rss_growth: float
    errors: int
    games_finished: int
    games_lost: int
    stored: dict[str, int]

    def met(self) -> bool:
        """Whether every target holds."""
        return self.rss_growth <= TARGET_RSS_GROWTH and self.errors == 0 and self.games_lost == 0


def figures(args: argparse.Namespace, soak: Soak, seconds: float, in_db: dict[str, int]) -> Figures:
    """The figures of a finished run; warm-up is the first --warmup of the run (by the RSS samples' times)."""
    warm_at = soak.rss[0][0] + args.warmup * (soak.rss[-1][0] - soak.rss[0][0])
    warm = next(rss for at, rss in soak.rss if at >= warm_at)
    lost = (soak.matched - soak.finished) | set(soak.aborted)
    unstored = len(soak.finished) - in_db.get("finished", 0)
    if unstored > 0 or in_db.get("running", 0):
        soak.error("unstored", f"{unstored} finished games missing from the database; stored: {in_db}")
    mb = 1024 * 1024
    return Figures(args.clients, args.minutes, soak.moves / seconds, percentile(soak.latencies, 99),
                   soak.rss[0][1] / mb, warm / mb, soak.rss[-1][1] / mb, soak.rss[-1][1] / warm - 1,
                   sum(soak.errors.values()), len(soak.finished), len(lost), in_db)


def report(result: Figures, soak: Soak) -> None:
    """Print the figures against the targets, and what went wrong if anything did."""
    print(f"clients: {result.clients}; minutes: {result.minutes:g}; {ENV_ID}")
    print(f"moves/s: {result.moves_per_s:.1f}; action -> ack p99: {result.p99_ms:.1f} ms")
    print(f"server RSS: {result.rss_start_mb:.0f} MB at the start, {result.rss_warm_mb:.0f} MB after warm-up, "
          f"{result.rss_end_mb:.0f} MB at the end: growth {100 * result.rss_growth:+.1f}% "
          f"(target <= {100 * TARGET_RSS_GROWTH:.0f}%: {verdict(result.rss_growth <= TARGET_RSS_GROWTH)})")
    print(f"errors: {result.errors} (target 0: {verdict(result.errors == 0)})")
    print(f"games: {result.games_finished} finished, {result.games_lost} lost "
          f"(target 0 lost: {verdict(result.games_lost == 0)}); stored by status: {result.stored}")
    if soak.problems:
        print("first problems:" + "".join(f"\n    {p}" for p in soak.problems))


def parse_args() -> argparse.Namespace:
    """The command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000, help="websocket clients (even: they pair up)")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to keep starting games")
    parser.add_argument("--warmup", type=float, default=0.2, help="share of the run before the baseline RSS")
    parser.add_argument("--db", help="database URL (default: SQLite in a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--timeout", type=float, help="abort after this many seconds (default: minutes + 10)")
    args = parser.parse_args()
    if args.clients < 2 or args.clients % 2 or args.minutes <= 0 or not 0 <= args.warmup < 1:
        parser.error("--clients must be even and at least 2, --minutes positive, --warmup in [0, 1)")
    args.timeout = args.timeout or 60 * args.minutes + 600
    return args


async def run(args: argparse.Namespace, tmp: Path, soak: Soak) -> Figures:
    """Start the server, soak it, stop it, and read the database."""
    port = free_port()
    server = await start_server(args, tmp, port)
    try:
        seconds = await soak_server(args, port, server.pid, soak)
    finally:
        print(f"arena server {stop_process(server)}", flush=True)
    if not soak.moves:
        problems = "".join(f"\n    {p}" for p in soak.problems[:5])
        raise BenchError(f"no move was played; first problems:{problems}\nserver stderr:\n{tail(tmp / 'arena.err')}")
    return figures(args, soak, seconds, await asyncio.to_thread(stored, args.db))


def main() -> int:
    """Run under the timeout and print the figures; the exit status says whether the targets held."""
    args = parse_args()
    limit = raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="arena-soak-") as tmp:
        args.db = args.db or f"sqlite:///{Path(tmp) / 'soak.db'}"
        print(f"open-files limit: {limit}; {args.clients} clients for {args.minutes:g} min; pid {os.getpid()}",
              flush=True)
        soak = Soak()
        try:
            result = asyncio.run(asyncio.wait_for(run(args, Path(tmp), soak), args.timeout))
        except TimeoutError:
            print(f"ABORTED: the run exceeded --timeout {args.timeout:g} s", file=sys.stderr)
            return 1
        except BenchError as error:
            print(f"ABORTED: {error}", file=sys.stderr)
            return 1
        report(result, soak)
        if args.json:
            args.json.write_text(json.dumps(asdict(result), indent=2))
        if soak.errors and (Path(tmp) / "arena.err").exists():
            print(f"server stderr (tail):\n{tail(Path(tmp) / 'arena.err')}")
        return 0 if result.met() else 2


if __name__ == "__main__":
    sys.exit(main())
