"""The `arena` command line: play, tournament, leaderboard, games, serve, connect, export, db upgrade, ratings
rebuild."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy.orm import Session

from agents.base import Agent
from agents.specs import AgentSpec, SpecError, build_agent, parse_specs
from arena import ratings
from arena.engine import InvalidMovePolicy
from arena.export import ExportError, export
from arena.play import AgentStartError, Arena, GameResult, schedule, start_agent
from arena.protocol import GameStatus
from arena.store import tournaments as tournament_store
from arena.store.agents import AgentConflict
from arena.store.database import StoreError, create, database_url, migrate, open_database
from arena.store.tournaments import TournamentExists
from arena.tournament import run as tournament_run
from arena.tournament.config import TournamentConfig, make_config
from arena.tournament.formats import Format, FormatError
from arena.tournament.html import render_html
from arena.tournament.remote import TournamentServerError, play_on_server
from arena.tournament.report import TournamentReport, build_report, build_summary
from arena.tournament.run import TournamentBusy, TournamentIncomplete, UnknownTournament, check_runner
from games import catalog

if TYPE_CHECKING:
    from arena.server.settings import ServerSettings

console = Console()


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def _policy(text: str) -> InvalidMovePolicy:
    try:
        return InvalidMovePolicy.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="arena", description="An arena where LLMs play TextArena games.")
    commands = parser.add_subparsers(dest="command", required=True)
    db_help = "SQLAlchemy database URL (default: $ARENA_DB or sqlite:///arena.db)"

    play = commands.add_parser("play", help="play games locally and store them")
    play.add_argument("env_id")
    play.add_argument("--agents", required=True, help="comma-separated agent specs, one per seat")
    play.add_argument("--games", type=int, default=1)
    play.add_argument("--seed", type=int, default=None, help="seed of the first game (default: random)")
    play.add_argument("--concurrency", type=int, default=256, help="games in flight at once (256)")
    play.add_argument("--invalid-moves", type=_policy, default=InvalidMovePolicy(),
                      metavar="POLICY", help="textarena (default), forfeit or retry:N")
    play.add_argument("--move-timeout", type=float, default=60.0, help="seconds per move before forfeit")
    play.add_argument("--tag", action="append", default=[], help="tag stored on every episode")
    play.add_argument("--db", help=db_help)

    board = commands.add_parser("leaderboard", help="ratings per env or overall")
    board.add_argument("--env", help="one env id (default: overall)")
    board.add_argument("--json", action="store_true")
    board.add_argument("--db", help=db_help)

    games = commands.add_parser("games", help="the game catalog")
    games.add_argument("--json", action="store_true")
    games.add_argument("--all", action="store_true", help="include games that cannot run here")

    db = commands.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"])
    db.add_argument("--db", help=db_help)

    serve = commands.add_parser("serve", help="run the arena server (websockets, HTTP API, web pages)")
    serve.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument("--tls-port", type=int, default=None, help="TLS port for TextArena game sockets (8443)")
    serve.add_argument("--tls-cert", default=None, help="certificate (default: self-signed, kept next to the db)")
    serve.add_argument("--tls-key", default=None, help="private key for --tls-cert")
    serve.add_argument("--house", default=None, help="house agent specs that fill empty seats (default random)")
    serve.add_argument("--move-timeout", type=float, default=None, help="seconds per move (default 60)")
    serve.add_argument("--resume-grace", type=float, default=None, help="seconds to resume a dropped seat (30)")
    serve.add_argument("--house-wait", type=float, default=None, help="seconds before a house agent fills in (10)")
    serve.add_argument("--max-connections-per-ip", type=int, default=None,
                       help="open connections from one address, both ports (2000)")
    serve.add_argument("--header-timeout", type=float, default=None,
                       help="seconds a connection may take to send a request's headers (10)")
    serve.add_argument("--outbox-bytes", type=int, default=None,
                       help="unsent data a websocket may hold before it is cut off (4194304)")
    serve.add_argument("--max-games-per-player", type=int, default=None,
                       help="games a player may have running, waiting to start or challenged at once (8)")
    serve.add_argument("--allowed-origins", default=None, metavar="ORIGIN,...",
                       help="other sites whose pages may open websockets here, e.g. https://arena.example.org")
    serve.add_argument("--db", help=db_help)

    connect = commands.add_parser("connect", help="play queued games on an arena server with any agent")
    connect.add_argument("url", help="ws://HOST:PORT of the server")
    connect.add_argument("--token", default=None, help="the agent's token (or $ARENA_TOKEN)")
    connect.add_argument("--agent", required=True, help="agent spec, e.g. random or python:mod:Agent")
    connect.add_argument("--env", required=True, help="env id(s) to queue for, comma-separated")
    connect.add_argument("--games", type=int, default=1)
    connect.add_argument("--opponent", default=None, help="challenge this agent by name")

    agents_cmd = commands.add_parser("agents", help="remote agent identities")
    agents_cmd.add_argument("action", choices=["create"])
    agents_cmd.add_argument("name")
    agents_cmd.add_argument("--db", help=db_help)

    rate = commands.add_parser("ratings", help="rating maintenance")
    rate.add_argument("action", choices=["rebuild"])
    rate.add_argument("--db", help=db_help)
    _tournament_parser(commands, db_help)
    _export_parser(commands, db_help)
    return parser


def _tournament_parser(commands, db_help: str) -> None:
    """`arena tournament run|resume|report|list`."""
    tournament = commands.add_parser("tournament", help="round-robin, Swiss and gauntlet tournaments")
    actions = tournament.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="schedule a tournament, store the schedule, and play it")
    run.add_argument("--name", required=True)
    run.add_argument("--envs", required=True, help="comma-separated env ids")
    run.add_argument("--agents", required=True, help="comma-separated agent specs (a gauntlet's candidate first); "
                     "with --server, the names of agents connected to it")
    run.add_argument("--format", choices=[f.value for f in Format], default=Format.ROUND_ROBIN.value)
    run.add_argument("--games-per-pair", type=int, default=None,
                     help="games per pairing and env: seeds x seatings (default: one seed in every seating)")
    run.add_argument("--rounds", type=int, default=None, help="Swiss rounds (default ceil(log2 agents))")
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", default=None, help="comma-separated seeds every pairing plays")
    seeds.add_argument("--seed-count", type=int, default=None, help="draw this many seeds")
    run.add_argument("--concurrency", type=int, default=256, help="games in flight at once (256)")
    run.add_argument("--invalid-moves", type=_policy, default=None,
                     metavar="POLICY", help="textarena (default), forfeit or retry:N (not with --server)")
    run.add_argument("--move-timeout", type=float, default=None,
                     help="seconds per move before forfeit (60; not with --server)")
    server_help = ("ws://HOST:PORT: play every game as a direct challenge to agents connected to that arena; "
                   "--db must be the server's database (the server stores the games, this process the schedule)")
    run.add_argument("--server", default=None, help=server_help)
    run.add_argument("--token", default=None, help="with --server: the organizer's agent token (or $ARENA_TOKEN)")
    run.add_argument("--db", help=db_help)
    resume = actions.add_parser("resume", help="play the games a stopped tournament is missing")
    resume.add_argument("name")
    resume.add_argument("--concurrency", type=int, default=256)
    resume.add_argument("--force", action="store_true", help="resume although another host's process held it")
    resume.add_argument("--server", default=None, help="a tournament played on a server: its URL now (default: "
                        "the one it was run with)")
    resume.add_argument("--token", default=None, help="with a server: the organizer's agent token (or $ARENA_TOKEN)")
    resume.add_argument("--db", help=db_help)
    report = actions.add_parser("report", help="standings, Bradley–Terry intervals, head-to-head, conduct")
    report.add_argument("name")
    report.add_argument("--json", action="store_true")
    report.add_argument("--html", default=None, metavar="PATH", help="write a self-contained HTML report")
    report.add_argument("--db", help=db_help)
    listing = actions.add_parser("list", help="stored tournaments")
    listing.add_argument("--db", help=db_help)


def _export_parser(commands, db_help: str) -> None:
    """`arena export`."""
    export = commands.add_parser("export", help="training data from the stored games (docs/export.md)")
    export.add_argument("--format", required=True, metavar="FORMAT",
                        help="messages, prompt-completion, preference, verl, tokens or episodes")
    export.add_argument("-o", "--output", required=True, metavar="PATH",
                        help="file to write: *.jsonl or *.parquet; - writes JSONL to stdout")
    export.add_argument("--env", nargs="+", action="extend", default=[], metavar="ENV", help="only these envs")
    export.add_argument("--agent", nargs="+", action="extend", default=[], metavar="NAME",
                        help="only the seats these agents played")
    export.add_argument("--since", metavar="DATE", help="games started on or after DATE (YYYY-MM-DD or ISO time)")
    export.add_argument("--until", metavar="DATE", help="games started before DATE (a date: through that day)")
    export.add_argument("--min-rating", metavar="R",
                        help="only seats whose agent's rating (mu - 3 sigma) in the game's env is at least R")
    export.add_argument("--outcome", metavar="RESULT", help="only seats that ended with win, draw or loss")
    export.add_argument("--reward", default="outcome", metavar="MODE", help="outcome (default), trueskill or surprise")
    export.add_argument("--tournament", metavar="NAME", help="only the games of this tournament")
    export.add_argument("--only-winners", action="store_true", help="only the seats that won (--outcome win)")
    export.add_argument("--db", help=db_help)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `arena` console script."""
    args = build_parser().parse_args(argv)
    handler = {"play": cmd_play, "leaderboard": cmd_leaderboard, "games": cmd_games, "db": cmd_db,
               "ratings": cmd_ratings, "serve": cmd_serve, "agents": cmd_agents, "connect": cmd_connect,
               "tournament": cmd_tournament, "export": cmd_export}[args.command]
    try:
        return handler(args)
    except (UsageError, SpecError, StoreError, catalog.GameError, AgentConflict, AgentStartError, FormatError,
            TournamentExists, TournamentBusy, TournamentIncomplete, UnknownTournament, TournamentServerError) as error:
        print(f"arena: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("arena: interrupted; unfinished games were recorded as aborted", file=sys.stderr)
        return 130


# --- play -----------------------------------------------------------------------------------


def cmd_play(args: argparse.Namespace) -> int:
    """Validate everything, then play the games and print the results table."""
    if args.games < 1 or args.concurrency < 1:
        raise UsageError("--games and --concurrency must be at least 1")
    specs = parse_specs(args.agents)
    catalog.require_playable(args.env_id, len(specs))
    built = {spec.name: build_agent(spec) for spec in specs}  # a bad spec fails here, before anything is stored
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    results, standings = asyncio.run(_play(args, specs, built, seed))
    _print_play_summary(args, specs, seed, results, standings)
    return 0


async def _play(args: argparse.Namespace, specs: Sequence[AgentSpec], built: dict[str, Agent],
                seed: int) -> tuple[list[GameResult], list[ratings.Standing]]:
    """Play the schedule through the library API; the results and the standings of these games."""
    async with Arena(database_url(args.db), policy=args.invalid_moves, move_timeout=args.move_timeout) as arena:
        ids = [(await arena.seat(spec, built[spec.name])).agent_id for spec in specs]
        results: list[GameResult] = []
        with _ProgressBar(args.games, args.env_id) as advance:
            async for result in arena.play(schedule(args.env_id, specs, args.games, seed, args.tag),
                                           args.concurrency):
                results.append(result)
                advance(1)
        standings = await asyncio.to_thread(arena.leaderboard, args.env_id, sorted(set(ids)),
                                            [r.episode_id for r in results])
    return results, standings


class _ProgressBar:
    """A rich progress bar with an ETA on a terminal; nothing otherwise. Entering gives `advance(n)`."""

    def __init__(self, total: int, label: str, out: Console = console) -> None:
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                            console=out) if out.is_terminal else None
        self.total, self.label = total, label

    def __enter__(self) -> Callable[[int], None]:
        if self.bar is None:
            return lambda _n: None
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print_play_summary(args: argparse.Namespace, specs: Sequence[AgentSpec], seed: int,
                        results: Sequence[GameResult], standings: Sequence[ratings.Standing]) -> None:
    aborted = sum(r.outcome.status == GameStatus.ABORTED for r in results)
    console.print(f"{args.env_id}: {len(results)} games (seeds {seed}..{seed + len(results) - 1})"
                  + (f", {aborted} aborted by the arena" if aborted else ""))
    table = Table("agent", "wins", "draws", "losses", "invalid", "rating", "mu", "sigma")
    for s in standings:
        table.add_row(s.agent, str(s.wins), str(s.draws), str(s.losses), str(s.invalid_moves),
                      f"{s.rating:.2f}", f"{s.mu:.2f}", f"{s.sigma:.2f}")
    console.print(table)
    if len({s.name for s in specs}) < len(specs):
        console.print("note: an agent held several seats; it is not rated by these games, only agents in one "
                      "seat are (name the seats apart, e.g. a=random,b=random, to rate them all)")


# --- other commands -------------------------------------------------------------------------


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Print ratings per env or overall."""
    if args.env:
        catalog.lookup(args.env)
    engine = open_database(args.db)
    with Session(engine) as session:
        standings = ratings.leaderboard(session, args.env)
    engine.dispose()
    if args.json:
        print(json.dumps([asdict(s) for s in standings], indent=1))
        return 0
    table = Table("#", "agent", "rating", "mu", "sigma", "games", "wins", "draws", "losses", "invalid moves",
                  title=f"Leaderboard: {args.env or 'overall'}")
    for rank, s in enumerate(standings, 1):
        table.add_row(str(rank), s.agent, f"{s.rating:.2f}", f"{s.mu:.2f}", f"{s.sigma:.2f}", str(s.games),
                      str(s.wins), str(s.draws), str(s.losses), str(s.invalid_moves))
    console.print(table if standings else "no rated games yet: try `arena play TicTacToe-v0 --agents random,first`")
    return 0


def cmd_games(args: argparse.Namespace) -> int:
    """Print the catalog (checking games not yet cached, in parallel)."""
    quiet = args.json or not console.is_terminal
    with console.status("checking games offline (cached afterwards)...") if not quiet else nullcontext():
        entries = list(catalog.load().values())
    shown = entries if args.all else [e for e in entries if e.playable]
    if args.json:
        print(catalog.as_json(shown))
        return 0
    table = Table("env id", "players", "playable" if not args.all else "status")
    for e in shown:
        table.add_row(e.env_id, e.players_text(), "yes" if e.playable else f"no: {e.reason}")
    console.print(table)
    playable = sum(e.playable for e in entries)
    console.print(f"{playable} of {len(entries)} env ids run here"
                  + ("" if args.all else "; --all lists the others with the reason"))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Validate the settings and house agents, then run the server until SIGTERM/SIGINT."""
    from arena.server.app import serve
    from arena.server.auth import bind_warning

    settings = serve_settings(args)
    open_database(settings.db).dispose()
    console.print(f"Arena server: open http://{settings.host}:{settings.port}/ "
                  f"(websocket ws://{settings.host}:{settings.port}/ws, API docs /docs; "
                  f"TextArena clients: http://{settings.host}:{settings.port}/textarena, "
                  f"game sockets on TLS port {settings.tls_port}); "
                  f"house agents: {', '.join(spec.name for spec in parse_specs(','.join(settings.house)))}")
    if warning := bind_warning(settings):
        console.print(f"warning: {warning}")
    serve(settings)
    return 0


def serve_settings(args: argparse.Namespace) -> ServerSettings:
    """`arena serve`'s flags, then ARENA_* variables, then defaults, as checked server settings."""
    from arena.server.settings import ServerSettings

    flags = {"host": args.host, "port": args.port, "tls_port": args.tls_port, "tls_cert": args.tls_cert,
             "tls_key": args.tls_key, "db": args.db, "move_timeout": args.move_timeout,
             "resume_grace": args.resume_grace, "house_wait": args.house_wait,
             "max_connections_per_ip": args.max_connections_per_ip, "header_timeout": args.header_timeout,
             "outbox_bytes": args.outbox_bytes, "max_games_per_player": args.max_games_per_player,
             "house": args.house, "allowed_origins": args.allowed_origins}  # comma-separated, split by the settings
    try:
        settings = ServerSettings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as error:
        raise UsageError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())) from None
    if settings.port == settings.tls_port:
        raise UsageError(f"--port and --tls-port are both {settings.port}: the TLS port needs a port of its own")
    for spec in parse_specs(",".join(settings.house)):
        build_agent(spec)
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    return settings


def cmd_connect(args: argparse.Namespace) -> int:
    """Connect an agent to a server and play N games, printing each result."""
    from agents.remote import RemoteClient, RemoteError

    token = args.token or os.environ.get("ARENA_TOKEN")
    if not token:
        raise UsageError("connect needs --token (create one with `arena agents create NAME`)")
    specs = parse_specs(args.agent)
    if len(specs) != 1:
        raise UsageError("connect plays one agent: give a single spec to --agent")
    agent = build_agent(specs[0])
    envs = [e.strip() for e in args.env.split(",") if e.strip()]
    client = RemoteClient(args.url, agent, envs, token=token, opponent=args.opponent)

    async def run() -> list:
        await start_agent(agent)
        try:
            return await client.play(args.games)
        finally:
            await agent.close()

    try:
        results = asyncio.run(run())
    except RemoteError as error:
        raise UsageError(f"the server refused: {error}") from error
    except OSError as error:
        raise UsageError(f"cannot reach {args.url}: {error}") from error
    for over in results:
        change = f", rating {over.rating_change:+.2f}" if over.rating_change is not None else ""
        console.print(f"game {over.game_id}: reward {over.reward} ({over.reason}){change}")
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    """Create a remote agent and print its token once."""
    from arena.store import agents as agent_store

    engine = open_database(args.db)
    try:
        with Session(engine) as session, session.begin():
            token = agent_store.create_with_token(session, args.name)
    finally:
        engine.dispose()
    print(f"created agent '{args.name}'. Its token (shown only now; only a hash is stored):")
    print(token)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """Apply migrations explicitly."""
    engine = create(database_url(args.db))
    try:
        applied = migrate(engine)
    finally:
        engine.dispose()
    print("database upgraded to the newest schema" if applied else "database already at the newest schema")
    return 0


def cmd_ratings(args: argparse.Namespace) -> int:
    """Replay the episode log and compare with (then replace) the stored ratings."""
    engine = open_database(args.db)
    with Session(engine) as session, session.begin():
        report = ratings.rebuild(session)
    engine.dispose()
    print(f"replayed {report.episodes} finished episodes into {report.ratings} ratings")
    if not report.mismatches:
        print("every rebuilt rating equals the stored one")
        return 0
    for agent_id, env_id, stored, rebuilt in report.mismatches[:20]:
        print(f"  agent {agent_id} {env_id}: stored {stored}, rebuilt {rebuilt}")
    print(f"{len(report.mismatches)} ratings differed from the log and were replaced")
    return 1


# --- export ---------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    """Write training data from the episode log; messages go to stderr when the data goes to stdout."""
    out = Console(stderr=True) if args.output == "-" else console
    with ExitStack() as bars:
        try:
            summary = export(args.output, args.format, args.db, reward=args.reward,
                             progress=lambda total: bars.enter_context(_ProgressBar(total, "export", out)),
                             envs=args.env, agents=args.agent, since=args.since, until=args.until,
                             min_rating=args.min_rating, outcome=args.outcome, tournament=args.tournament,
                             only_winners=args.only_winners)
        except ExportError as error:
            option = f"--{error.option.replace('_', '-')}: " if error.option else ""
            raise UsageError(option + error.message) from None
    where, stream = ("stdout", sys.stderr) if args.output == "-" else (args.output, sys.stdout)
    if summary.rows:
        print(f"wrote {summary.rows} {summary.format} rows from {summary.episodes} games to {where}", file=stream)
    else:
        print(f"no {summary.format} rows matched ({summary.episodes} games read): wrote an empty file to {where}",
              file=stream)
    return 0


# --- tournament -----------------------------------------------------------------------------


def cmd_tournament(args: argparse.Namespace) -> int:
    """Run, resume, report on or list tournaments."""
    return {"run": _tournament_run, "resume": _tournament_resume, "report": _tournament_report,
            "list": _tournament_list}[args.action](args)


def _tournament_run(args: argparse.Namespace) -> int:
    """Validate everything, store the schedule, play it, and print the standings."""
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if args.server and (args.move_timeout is not None or args.invalid_moves is not None):
        raise UsageError("with --server the server's move timeout and invalid-move policy apply "
                         "(`arena serve --move-timeout`): drop --move-timeout and --invalid-moves")
    token = _server_token(args) if args.server else None
    texts = [p.strip() for p in args.agents.split(",") if p.strip()]
    # bad specs fail here; on a server the agents are names, checked there before anything is stored
    built = {} if args.server else {spec.name: build_agent(spec) for spec in parse_specs(args.agents)}
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()] if args.seeds is not None else None
    except ValueError as error:
        raise UsageError(f"--seeds takes comma-separated integers: {error}") from error
    config = make_config(Format(args.format), [e.strip() for e in args.envs.split(",") if e.strip()], texts,
                         args.games_per_pair, args.rounds, seeds, args.seed_count,
                         60.0 if args.move_timeout is None else args.move_timeout,
                         str(args.invalid_moves or InvalidMovePolicy()), server=args.server)
    if args.server:
        asyncio.run(play_on_server(args.server, token, args.name, config, database_url(args.db), args.concurrency,
                                   _ProgressBar(config.total_games(), args.name), new=True,
                                   admin_token=os.environ.get("ARENA_ADMIN_TOKEN")))
    else:
        asyncio.run(_play_tournament(database_url(args.db), args.name, config, built, args.concurrency, new=True))
    return _tournament_report(argparse.Namespace(name=args.name, db=args.db, json=False, html=None))


def _tournament_resume(args: argparse.Namespace) -> int:
    """Play the games a stopped tournament is missing, then print the standings."""
    engine = open_database(args.db)
    with Session(engine) as session:
        row = tournament_store.get_tournament(session, args.name)
    engine.dispose()
    if row is None:
        raise UnknownTournament(f"no tournament named '{args.name}' in this database")
    check_runner(row, args.force)
    config = TournamentConfig.model_validate(row.config)
    if args.server and not config.server:
        raise UsageError(f"tournament '{args.name}' plays agent specs in this process; only a tournament run "
                         "with --server resumes on a server")
    if config.server:
        asyncio.run(play_on_server(args.server or config.server, _server_token(args), args.name, config,
                                   database_url(args.db), args.concurrency,
                                   _ProgressBar(config.total_games(), args.name), new=False,
                                   admin_token=os.environ.get("ARENA_ADMIN_TOKEN")))
    else:
        built = {spec.name: build_agent(spec) for spec in config.specs}
        asyncio.run(_play_tournament(database_url(args.db), args.name, config, built, args.concurrency, new=False))
    return _tournament_report(argparse.Namespace(name=args.name, db=args.db, json=False, html=None))


def _server_token(args: argparse.Namespace) -> str:
    """The organizer's token for a tournament on a server: --token, else $ARENA_TOKEN."""
    token = args.token or os.environ.get("ARENA_TOKEN")
    if not token:
        raise UsageError("a tournament on a server needs --token (an agent of its own, not a player: "
                         "`arena agents create organizer`)")
    return token


async def _play_tournament(url: str, name: str, config: TournamentConfig, built: dict[str, Agent],
                           concurrency: int, new: bool) -> None:
    """Store a new tournament (or load a stored one) and play its missing games in-process."""
    async with Arena(url, policy=config.policy, move_timeout=config.move_timeout) as arena:
        if new:
            await tournament_run.create(arena, name, config)
        row, _ = await asyncio.to_thread(tournament_run.load, arena, name)
        for spec in config.specs:
            await arena.seat(spec, built[spec.name])
        with _ProgressBar(config.total_games(), name) as advance:
            await tournament_run.play(arena, row, config, concurrency, advance)


def _tournament_report(args: argparse.Namespace) -> int:
    """Print the report, as tables or JSON, and write the HTML file if asked."""
    engine = open_database(args.db)
    try:
        with Session(engine) as session:
            report = build_report(session, args.name)
    finally:
        engine.dispose()
    if args.html:
        Path(args.html).write_text(render_html(report), encoding="utf-8")
    if args.json:
        print(report.model_dump_json(indent=1))
    else:
        _print_report(report)
        if args.html:
            console.print(f"HTML report: {args.html}")
    return 0


def _print_report(report: TournamentReport) -> None:
    console.print(f"Tournament {report.name} ({report.format}, {report.status}): {report.games_played} of "
                  f"{report.games_scheduled} games played on {', '.join(report.envs)}"
                  + (f"; {report.aborted_attempts} interrupted tries replayed" if report.aborted_attempts else ""))
    bt = {s.agent: s for s in report.bradley_terry}
    table = Table("#", "agent", "TrueSkill", "mu", "sigma", "games", "W", "D", "L", "Bradley–Terry", "95% interval",
                  title="Standings (TrueSkill: mu - 3 sigma over the tournament's games, in schedule order)")
    for rank, s in enumerate(report.trueskill, 1):
        b = bt[s.agent]
        table.add_row(str(rank), s.agent, f"{s.rating:.2f}", f"{s.mu:.2f}", f"{s.sigma:.2f}", str(s.games),
                      str(s.wins), str(s.draws), str(s.losses), f"{b.rating:.0f}", f"{b.low:.0f} to {b.high:.0f}")
    console.print(table)
    pairs = Table("agent", "opponent", "games", "observed", "TrueSkill predicts", "Bradley–Terry predicts",
                  title="Pairings: agent's score (draws half) and predicted win probability")
    for p in report.predictions:
        pairs.add_row(p.agent, p.opponent, str(p.games), f"{p.observed:.2f}", f"{p.trueskill:.2f}",
                      f"{p.bradley_terry:.2f}")
    console.print(pairs)
    conduct = Table("agent", "moves", "invalid", "timeouts", "errors", "s/move", "tokens in", "tokens out",
                    title="Conduct")
    for c in report.conduct:
        conduct.add_row(c.agent, str(c.moves), f"{c.invalid_moves} ({c.invalid_rate:.1%})",
                        f"{c.timeouts} ({c.timeout_rate:.1%})", str(c.errors), f"{c.seconds_per_move:.3f}",
                        str(c.prompt_tokens), str(c.completion_tokens))
    console.print(conduct)


def _tournament_list(args: argparse.Namespace) -> int:
    """Print every stored tournament with its progress."""
    engine = open_database(args.db)
    try:
        with Session(engine) as session:
            rows = [(name, build_summary(session, name)) for name in tournament_store.tournament_names(session)]
    finally:
        engine.dispose()
    table = Table("name", "format", "status", "games", "envs", "agents")
    for name, (fmt, status, played, total, envs, agents) in rows:
        table.add_row(name, fmt, status, f"{played}/{total}", ", ".join(envs), ", ".join(agents))
    console.print(table if rows else "no tournaments yet: try `arena tournament run --name demo "
                  "--envs TicTacToe-v0 --agents random,first`")
    return 0
