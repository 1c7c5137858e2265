"""Load-test the arena server: many websocket clients playing TicTacToe at once, against a bare echo server.

Starts the real `arena serve` in a subprocess (fresh SQLite database in a temporary folder) and opens
2 * --games websocket clients from one asyncio loop. Every client says hello as a guest (connections are
opened in batches of 100); once all are welcomed, every client queues for TicTacToe-v0 and answers each
`turn` at once with the first available move, until its `game_over`. Measured from the first `match`
to the last `game_over`: moves (acked actions) per second, and the latency from sending an action to
the arrival of the game's next `turn` at the opponent (p50/p99; the final action of a game is ignored).

Reference, in the same run: a bare `websockets` echo server in another subprocess, the same number of
clients doing sequential round trips of an action-sized JSON text for --echo-seconds.
The server's own view of the same latency (an action's arrival -> the next `turn` frame written, from
its /metrics histogram) is printed too; the p99 target is checked on it, as the issue words it.
Targets: (arena moves/s) / (echo round trips/s) >= 0.5, and action->next-turn p99 <= 50 ms.
It also prints the CPU time per move of the server (with its database writer process) and of the clients,
and how many cores each would take at the target rate, so a run shows whether the machine could reach
the target at all.
The exit status is 0 whether or not the targets are met; 1 only when no measurement could be made
(the run exceeded --timeout, a server failed to start, or no game finished).

Run: .venv/bin/python benchmarks/server_load.py [--games 500] [--echo-seconds 5] [--timeout 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from arena.testing.ports import free_port

ENV_ID = "TicTacToe-v0"
BATCH = 100
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0
MOVE = re.compile(r"\[(\d)\]")
ECHO_PAYLOAD = json.dumps({"type": "action", "game_id": 123456, "action": "[4]"})
ECHO_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve

async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)

async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), backlog=2048) as server:
        await server.serve_forever()

asyncio.run(main())
"""


class BenchError(Exception):
    """The benchmark could not measure anything: printed as one line, exit status 1."""


@dataclass
class ArenaStats:
    """What the arena clients saw."""

    sent_at: dict[int, float] = field(default_factory=dict)  # game id -> when its last action was sent
    latencies: list[float] = field(default_factory=list)  # seconds, action -> next turn of that game
    received: Counter[str] = field(default_factory=Counter)  # message type -> count
    errors: Counter[str] = field(default_factory=Counter)  # error code -> count
    problems: list[str] = field(default_factory=list)
    welcomed: int = 0
    moves: int = 0
    finished: set[int] = field(default_factory=set)
    server_buckets: list[tuple[float, float]] = field(default_factory=list)  # (le, cumulative count) from /metrics
    queued_at: float | None = None  # when every client was told to queue
    first_match: float | None = None
    last_match: float | None = None
    last_over: float | None = None

    def problem(self, text: str) -> None:
        """Remember an unexpected event."""
        self.problems.append(text)


@dataclass
class EchoStats:
    """What the echo clients saw."""

    latencies: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    elapsed: float = 0.0


@dataclass
class Run:
    """Everything one run measured, kept outside the timed coroutine so an abort can still report."""

    args: argparse.Namespace
    tmp: Path
    arena: ArenaStats = field(default_factory=ArenaStats)
    echo: EchoStats = field(default_factory=EchoStats)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)  # name -> server process
    cpu: dict[str, tuple[float, float]] = field(default_factory=dict)  # phase -> (server, client) CPU seconds
    phase: str = "starting"


# --- processes --------------------------------------------------------------------------------


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard limit (inherited by the servers); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def start_process(run: Run, name: str, command: list[str]) -> subprocess.Popen:
    """Start a server with stdout and stderr going to files in the temporary folder."""
    with (run.tmp / f"{name}.out").open("wb") as out, (run.tmp / f"{name}.err").open("wb") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    run.processes[name] = proc
    return proc


def stop_process(proc: subprocess.Popen) -> str:
    """SIGTERM the process and wait for it; a description of how it ended."""
    if proc.poll() is not None:
        return f"had already exited with status {proc.returncode}"
    proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return f"ignored SIGTERM for 60 s and was killed (status {proc.wait()})"
    ending = f"ended by {signal.Signals(-status).name}" if status < 0 else f"exit status {status}"
    return f"stopped by SIGTERM ({ending})"


def cpu_now(pid: int) -> tuple[float, float]:
    """CPU seconds used so far by process `pid` and its descendants (its database writer), NaN where
    /proc is missing, and by this process."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent pid, CPU seconds)
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(stat.parent.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    if pid not in stats:
        return math.nan, time.process_time()
    tree, grew = {pid}, True
    while grew:
        children = {p for p, (parent, _) in stats.items() if parent in tree} - tree
        tree, grew = tree | children, bool(children)
    return sum(stats[p][1] for p in tree), time.process_time()


def cpu_since(pid: int, start: tuple[float, float]) -> tuple[float, float]:
    """CPU seconds used by process `pid` and by this process since `start` (from `cpu_now`)."""
    server, client = cpu_now(pid)
    return server - start[0], client - start[1]


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file, indented."""
    if not path.exists():
        return "    (no file)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in text) or "    (empty)"


async def wait_until(ready: Callable[[], Awaitable[bool]], proc: subprocess.Popen, what: str) -> None:
    """Poll `ready` until it is true; BenchError if the process exits first."""
    while not await ready():
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} before it was ready")
        await asyncio.sleep(0.1)


async def start_arena(run: Run, port: int) -> subprocess.Popen:
    """Start `arena serve` and wait until /health answers 200."""
    arena = str(Path(sys.executable).parent / "arena")
    command = [arena, "serve", "--port", str(port), "--tls-port", str(free_port(besides=port)),
               "--db", f"sqlite:///{run.tmp / 'bench.db'}",
               "--house", "random", "--house-wait", "3600", "--move-timeout", "120"]
    proc = start_process(run, "arena", command)
    await wait_until(lambda: asyncio.to_thread(health_ok, port), proc, "the arena server")
    return proc


def health_ok(port: int) -> bool:
    """Whether GET /health answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


async def start_echo(run: Run, port: int) -> subprocess.Popen:
    """Start the bare websockets echo server and wait until it accepts TCP connections."""
    proc = start_process(run, "echo", [sys.executable, "-c", ECHO_SERVER, str(port)])
    await wait_until(lambda: port_open(port), proc, "the echo server")
    return proc


async def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on the port."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


# --- arena clients ----------------------------------------------------------------------------


def first_move(observation: str) -> str:
    """The first available move after the last 'Available Moves:' of a TicTacToe observation."""
    return f"[{MOVE.findall(observation.rsplit('Available Moves:', 1)[-1])[0]}]"


async def arena_client(i: int, url: str, stats: ArenaStats, welcomed: asyncio.Future[None],
                       go: asyncio.Event) -> None:
    """One guest: hello, wait for `go`, queue for one game, play it instantly, close after game_over."""
    try:
        async with connect(url, open_timeout=60, max_queue=None) as ws:
            await ws.send(json.dumps({"type": "hello", "guest": f"b{i}"}))
            reply = json.loads(await ws.recv())
            if reply.get("type") != "welcome":
                stats.problem(f"b{i}: expected welcome, got {reply}")
                return
            stats.welcomed += 1
            welcomed.set_result(None)
            await go.wait()
            await ws.send(json.dumps({"type": "queue", "envs": [ENV_ID]}))
            await play(ws, i, stats)
    except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the others
        stats.problem(f"b{i}: {type(error).__name__}: {error}")
    finally:
        if not welcomed.done():
            welcomed.set_result(None)


async def play(ws: ClientConnection, i: int, stats: ArenaStats) -> None:
    """Answer every turn at once; return after game_over (or if the server closes or refuses)."""
    async for raw in ws:
        now = time.perf_counter()
        message = json.loads(raw)
        kind = message.get("type", "?")
        stats.received[kind] += 1
        if kind == "match":
            stats.first_match = stats.first_match or now
            stats.last_match = now
        elif kind == "turn":
            await answer_turn(ws, message, now, stats)
        elif kind == "ack":
            stats.moves += 1
        elif kind == "game_over":
            stats.sent_at.pop(message["game_id"], None)  # the final action: no next turn follows
            stats.finished.add(message["game_id"])
            stats.last_over = now
            return
        elif kind in ("error", "shutdown"):
            stats.errors[message.get("code", kind)] += 1
            stats.problem(f"b{i}: {raw}")
    stats.problem(f"b{i}: connection closed before game_over")


async def answer_turn(ws: ClientConnection, turn: dict, now: float, stats: ArenaStats) -> None:
    """Record the latency since the game's previous action, then send the first available move."""
    game_id = turn["game_id"]
    sent = stats.sent_at.pop(game_id, None)
    if sent is not None:
        stats.latencies.append(now - sent)
    action = json.dumps({"type": "action", "game_id": game_id, "action": first_move(turn["observation"])})
    stats.sent_at[game_id] = time.perf_counter()
    await ws.send(action)


async def open_in_batches(count: int, client: Callable[[int, asyncio.Future[None]], Awaitable[None]]
                          ) -> list[asyncio.Task[None]]:
    """Start `count` clients, BATCH at a time: each batch resolves its futures (connected) before the next."""
    tasks: list[asyncio.Task[None]] = []
    for first in range(0, count, BATCH):
        futures = [asyncio.get_running_loop().create_future() for _ in range(min(BATCH, count - first))]
        tasks += [asyncio.create_task(client(first + k, f)) for k, f in enumerate(futures)]
        await asyncio.gather(*futures)
    return tasks


async def run_arena(run: Run, port: int, pid: int) -> None:
    """Connect every client in batches, let them all queue at once, and wait until every game ends."""
    url, go = f"ws://127.0.0.1:{port}/ws", asyncio.Event()
    tasks = await open_in_batches(2 * run.args.games, lambda i, welcomed: arena_client(i, url, run.arena, welcomed, go))
    run.phase = "arena: playing"
    start = cpu_now(pid)
    run.arena.queued_at = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    run.cpu["arena"] = cpu_since(pid, start)
    run.arena.server_buckets = await asyncio.to_thread(latency_buckets, port)


def latency_buckets(port: int) -> list[tuple[float, float]]:
    """The server's own action -> next turn histogram from /metrics: (upper bound s, cumulative count)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return [(float(sample.labels["le"]), sample.value) for family in text_string_to_metric_families(text)
            if family.name == "arena_move_latency_seconds" for sample in family.samples
            if sample.name.endswith("_bucket")]


def bucket_percentile(buckets: list[tuple[float, float]], q: float) -> float:
    """The upper bound (ms) of the histogram bucket holding the q-th percentile; NaN when empty."""
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= q / 100 * total:
            return 1000 * bound
    return math.nan


# --- echo reference ---------------------------------------------------------------------------


async def echo_client(url: str, stats: EchoStats, connected: asyncio.Future[None], go: asyncio.Event,
                      until: list[float]) -> None:
    """Sequential round trips of an action-sized text until the shared deadline `until[0]`."""
    try:
        async with connect(url, open_timeout=60) as ws:
            connected.set_result(None)
            await go.wait()
            while time.perf_counter() < until[0]:
                sent = time.perf_counter()
                await ws.send(ECHO_PAYLOAD)
                await ws.recv()
                stats.latencies.append(time.perf_counter() - sent)
    except Exception as error:  # noqa: BLE001 - reported, never fatal
        stats.problems.append(f"{type(error).__name__}: {error}")
    finally:
        if not connected.done():
            connected.set_result(None)


async def run_echo(run: Run, port: int, pid: int) -> None:
    """Connect the same number of clients in batches, then round-trip for --echo-seconds."""
    url, go, until = f"ws://127.0.0.1:{port}/", asyncio.Event(), [math.inf]
    tasks = await open_in_batches(2 * run.args.games, lambda _, ready: echo_client(url, run.echo, ready, go, until))
    run.phase = "echo: round trips"
    start = cpu_now(pid)
    begin = time.perf_counter()
    until[0] = begin + run.args.echo_seconds
    go.set()
    await asyncio.gather(*tasks)
    run.echo.elapsed = time.perf_counter() - begin
    run.cpu["echo"] = cpu_since(pid, start)


# --- the run ----------------------------------------------------------------------------------


async def bench(run: Run) -> None:
    """The arena phase, then the echo phase, each with its own server stopped afterwards."""
    for name, start, measure in (("arena", start_arena, run_arena), ("echo", start_echo, run_echo)):
        run.phase = f"{name}: starting the server"
        port = free_port()
        server = await start(run, port)
        run.phase = f"{name}: connecting clients"
        await measure(run, port, server.pid)
        print(f"{name} server {stop_process(server)}", flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`, in milliseconds; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return 1000 * ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def verdict(ok: bool) -> str:
    """'met' or 'MISSED'."""
    return "met" if ok else "MISSED"


def cpu_text(run: Run, phase: str, period: str) -> str:
    """CPU seconds used by the server and by the client process during a phase's measured period."""
    server, client = run.cpu.get(phase, (math.nan, math.nan))
    return f"CPU {period}: server {server:.2f} s, clients {client:.2f} s"


def report_arena(run: Run) -> tuple[float, float]:
    """Print the arena figures; return moves/s and the p99 action -> next-turn latency in ms."""
    a, games = run.arena, run.args.games
    if a.queued_at is None or a.first_match is None or a.last_match is None or a.last_over is None:
        raise BenchError("no arena game finished, so there is nothing to measure")
    wall = a.last_over - a.first_match
    moves_per_s = a.moves / wall if wall > 0 else math.nan
    p50, p99 = percentile(a.latencies, 50), percentile(a.latencies, 99)
    print(f"games: {games} requested, {len(a.finished)} finished ({ENV_ID})")
    print(f"clients: {2 * games}")
    print(f"moves: {a.moves} acked")
    print(f"wall time (first match -> last game_over): {wall:.2f} s")
    print(f"  queue sent -> first match {a.first_match - a.queued_at:.2f} s; "
          f"first -> last match {a.last_match - a.first_match:.2f} s")
    print(f"  {cpu_text(run, 'arena', f'from queue to last game_over ({a.last_over - a.queued_at:.2f} s)')}")
    print(f"arena moves/s: {moves_per_s:.1f}")
    frames_out = sum(a.received.values())
    frames_in = a.moves + 2 * games  # actions, plus a queue message per client (hellos came before)
    print(f"frames: the server sent {frames_out} ({frames_out / a.moves:.2f} per move: {dict(a.received)}) and "
          f"received {frames_in}; {(frames_out + frames_in) / wall:.0f} frames/s in all (an echo round trip is 2)")
    print(f"action -> next turn, as the clients saw it (their send -> the opponent's receipt): p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms ({len(a.latencies)} samples)")
    samples = int(a.server_buckets[-1][1]) if a.server_buckets else 0
    server_p50, server_p99 = bucket_percentile(a.server_buckets, 50), bucket_percentile(a.server_buckets, 99)
    print(f"action -> next turn, in the server (arrival -> turn frame written; /metrics histogram, bucket upper "
          f"bounds): p50 <= {server_p50:g} ms, p99 <= {server_p99:g} ms ({samples} samples)")
    return moves_per_s, server_p99


def report_echo(run: Run) -> float:
    """Print the echo reference figures; return round trips/s."""
    e = run.echo
    per_s = len(e.latencies) / e.elapsed if e.elapsed > 0 else math.nan
    print(f"echo: {len(e.latencies)} round trips in {e.elapsed:.2f} s by {2 * run.args.games} clients")
    print(f"  {cpu_text(run, 'echo', f'during the {e.elapsed:.2f} s')}")
    print(f"echo round trips/s: {per_s:.1f}")
    print(f"echo round trip: p50 {percentile(e.latencies, 50):.1f} ms, p99 {percentile(e.latencies, 99):.1f} ms")
    return per_s


def report(run: Run) -> None:
    """Print the figures and the targets."""
    moves_per_s, p99 = report_arena(run)
    echo_per_s = report_echo(run)
    ratio = moves_per_s / echo_per_s if echo_per_s else math.nan
    print(f"ratio arena moves/s / echo round trips/s: {ratio:.3f}")
    print(f"target ratio >= {TARGET_RATIO}: {verdict(ratio >= TARGET_RATIO)}")
    print(f"target p99 <= {TARGET_P99_MS:.0f} ms: {verdict(p99 <= TARGET_P99_MS)}")
    report_capacity(run, TARGET_RATIO * echo_per_s)


def report_capacity(run: Run, target_moves_per_s: float) -> None:
    """CPU per move as measured, and the cores the target rate would take at that cost."""
    server, client = run.cpu.get("arena", (math.nan, math.nan))
    moves = run.arena.moves
    if not moves:
        return
    cores = len(os.sched_getaffinity(0))
    print(f"CPU per move: server {1e6 * server / moves:.0f} us, clients {1e6 * client / moves:.0f} us; at the "
          f"target {target_moves_per_s:.0f} moves/s they would take {target_moves_per_s * server / moves:.2f} "
          f"and {target_moves_per_s * client / moves:.2f} cores ({cores} available)")


def diagnostics(run: Run) -> None:
    """Print what went wrong, if anything: problems, error codes, message counts, server logs."""
    a = run.arena
    problems = a.problems + run.echo.problems
    if not problems and len(a.finished) == run.args.games:
        return
    print(f"phase reached: {run.phase}; clients welcomed: {a.welcomed}; games finished: {len(a.finished)}")
    print(f"messages received by type: {dict(a.received)}; error codes: {dict(a.errors)}")
    print(f"problems: {len(problems)}" + "".join(f"\n    {p[:300]}" for p in problems[:10]))
    for name in ("arena", "echo"):
        if (run.tmp / f"{name}.err").exists():
            print(f"{name} server stderr (tail):\n{tail(run.tmp / f'{name}.err')}")


def parse_args() -> argparse.Namespace:
    """The command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=500, help="simultaneous games (two clients each)")
    parser.add_argument("--echo-seconds", type=float, default=5.0, help="duration of the echo reference")
    parser.add_argument("--timeout", type=float, default=300.0, help="abort the whole run after this many seconds")
    args = parser.parse_args()
    if args.games < 1 or args.echo_seconds <= 0 or args.timeout <= 0:
        parser.error("--games, --echo-seconds and --timeout must be positive")
    return args


def main() -> int:
    """Run both phases under the timeout, print the figures, and always stop the servers."""
    args = parse_args()
    limit = raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="arena-bench-load-") as tmp:
        run = Run(args, Path(tmp))
        print(f"open-files limit: {limit}; {2 * args.games} clients; temporary folder {tmp}", flush=True)
        try:
            asyncio.run(asyncio.wait_for(bench(run), args.timeout))
            report(run)
            return 0
        except TimeoutError:
            print(f"ABORTED: the run exceeded --timeout {args.timeout:g} s (during {run.phase})", file=sys.stderr)
            return 1
        except BenchError as error:
            print(f"FAILED: {error}", file=sys.stderr)
            return 1
        finally:
            for name, proc in run.processes.items():
                if proc.poll() is None:
                    print(f"{name} server {stop_process(proc)}")
            diagnostics(run)


if __name__ == "__main__":
    sys.exit(main())
