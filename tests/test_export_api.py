"""`GET /api/export` on a running server: the bytes `arena export` writes, bad requests, and who may export."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import HTTPException
from helpers import play_games
from server_helpers import ARENA
from starlette.requests import Request

from arena.play import schedule
from arena.server.export_api import _authorize


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
        done = subprocess.run([ARENA, "export", "--format", fmt, "-o", str(target), "--db", db_url, *flags],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        status, body = fetch(f"{srv.url}/api/export?format={fmt}{options}")
        assert status == 200 and body == target.read_bytes() and body.count(b"\n") >= 6
    status, body = fetch(f"{srv.url}/api/export?format=messages&agent=nobody")
    assert status == 400 and b"unknown agent 'nobody'" in body
    status, body = fetch(f"{srv.url}/api/export?format=sft")
    assert status == 422 and b"messages" in body


def request_from(host: str, token: str | None, admin_token: str | None) -> Request:
    app = SimpleNamespace(state=SimpleNamespace(hub=SimpleNamespace(settings=SimpleNamespace(admin_token=admin_token))))
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return Request({"type": "http", "client": (host, 5000), "headers": headers, "app": app})


@pytest.mark.parametrize(("host", "token", "admin", "allowed"), [
    ("127.0.0.1", None, None, True), ("::1", None, None, True), ("10.0.0.7", None, None, False),
    ("10.0.0.7", "s3cret", None, False), ("10.0.0.7", None, "s3cret", False), ("10.0.0.7", "wrong", "s3cret", False),
    ("10.0.0.7", "s3cret", "s3cret", True), ("testclient", None, "s3cret", False)])
def test_off_loopback_export_needs_the_admin_token(host, token, admin, allowed) -> None:
    if allowed:
        _authorize(request_from(host, token, admin))
    else:
        with pytest.raises(HTTPException) as refused:
            _authorize(request_from(host, token, admin))
        assert refused.value.status_code == 403
