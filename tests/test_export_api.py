"""`GET /api/export` on a running server: the bytes `arena export` writes, and bad requests (access: test_auth.py)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

from helpers import arena, play_games

from arena.play import schedule


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_server_streams_what_the_command_writes(server, db_url: str, tmp_path: Path) -> None:
    asyncio.run(play_games(db_url, schedule("TicTacToe-v0", ["random", "first"], 6, 1)))
    srv = server()
    for fmt, options in (("messages", ""), ("prompt-completion", "&agent=first&reward=outcome"),
                         ("episodes", "&env=TicTacToe-v0&since=2000-01-01")):
        target = tmp_path / f"{fmt}.jsonl"
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in (p.split("=") for p in options.split("&")[1:])]
        done = arena("export", "--format", fmt, "-o", str(target), "--db", db_url, *flags)
        assert done.returncode == 0, done.stderr
        status, body = fetch(f"{srv.url}/api/export?format={fmt}{options}")
        assert status == 200 and body == target.read_bytes() and body.count(b"\n") >= 6
    status, body = fetch(f"{srv.url}/api/export?format=messages&agent=nobody")
    assert status == 400 and b"unknown agent 'nobody'" in body
    status, body = fetch(f"{srv.url}/api/export?format=sft")
    assert status == 422 and b"messages" in body
