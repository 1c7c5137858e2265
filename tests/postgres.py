"""A throwaway PostgreSQL server for the tests, and a brand-new empty database per test.

`PostgresServer.find()` uses the server at `ARENA_TEST_POSTGRES_URL` when it is set; otherwise it
starts a private cluster (`initdb` + `pg_ctl`, as the `postgres` user when running as root, since
`initdb` refuses root) on 127.0.0.1 and a free port, in a temporary folder that `stop()` deletes.
The binaries come from `ARENA_PG_BIN` (the folder holding `initdb`, which `make test` passes), else
the newest `/usr/lib/postgresql/*/bin`, else `initdb` on the PATH. Without them, `find()` raises
`PostgresUnavailable`: the tests skip, except under CI (`CI` set), where that is an error.

Each cluster's folder names the process that made it (`owner`); `remove_left_behind()` stops and deletes the
clusters (and catalog caches) of test processes that died without cleaning up (killed, or crashed).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from sqlalchemy.engine import URL, make_url

from arena.testing.ports import free_port

URL_VARIABLE = "ARENA_TEST_POSTGRES_URL"
BIN_VARIABLE = "ARENA_PG_BIN"
# durability is pointless for a cluster deleted at the end of the run: these make it much faster
FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
CLUSTER_PREFIX = "arena-pg-"
CATALOG_PREFIX = "arena-catalog-"
OWNER = "owner"  # file in a run's temporary folder: the id of the test process that made it


class PostgresUnavailable(Exception):
    """No PostgreSQL to test against: no `ARENA_TEST_POSTGRES_URL` and no server binaries."""


def server_binaries() -> Path:
    """The folder with `initdb` and `pg_ctl`, or PostgresUnavailable saying where it looked."""
    if configured := os.environ.get(BIN_VARIABLE):
        if (Path(configured) / "initdb").is_file():
            return Path(configured)
        raise PostgresUnavailable(f"{BIN_VARIABLE}={configured} has no initdb")
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if found:
        newest = max(found, key=lambda path: [int(n) for n in re.findall(r"\d+", Path(path).parent.parent.name)])
        return Path(newest).parent
    if on_path := shutil.which("initdb"):
        return Path(on_path).parent
    raise PostgresUnavailable(
        f"no PostgreSQL server binaries (looked at ${BIN_VARIABLE}, /usr/lib/postgresql/*/bin and the PATH) "
        f"and no ${URL_VARIABLE}: 'apt-get install -y postgresql' (make test does it as root)")


class PostgresServer:
    """A PostgreSQL server to make test databases on: started here (`folder` set) or given by URL."""

    def __init__(self, url: URL, folder: Path | None = None, pg_ctl: list[str] | None = None) -> None:
        self.url = url  # SQLAlchemy URL of the maintenance database (`postgres`)
        self.folder = folder
        self._pg_ctl = pg_ctl or []
        self.start_seconds = 0.0

    @classmethod
    def find(cls) -> PostgresServer:
        """The server at ARENA_TEST_POSTGRES_URL, else a new private cluster."""
        if given := os.environ.get(URL_VARIABLE):
            url = make_url(given)
            if not url.get_backend_name().startswith("postgresql"):
                raise ValueError(f"{URL_VARIABLE} is not a PostgreSQL URL: {given}")
            return cls(url.set(drivername="postgresql+psycopg", database=url.database or "postgres"))
        return cls.start()

    @classmethod
    def start(cls) -> PostgresServer:
        """initdb and start a cluster in a new temporary folder; raises (and cleans up) on failure."""
        binaries = server_binaries()
        as_user: list[str] = []
        folder = Path(tempfile.mkdtemp(prefix=CLUSTER_PREFIX))
        (folder / OWNER).write_text(str(os.getpid()))
        if os.geteuid() == 0:  # initdb and pg_ctl refuse root: run them as `postgres`, in a folder it owns
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(folder)
                raise PostgresUnavailable("running as root and there is no 'postgres' user to run initdb") from None
            os.chown(folder, user.pw_uid, user.pw_gid)
            as_user = ["runuser", "-u", "postgres", "--"]
        data = folder / "data"
        server = cls(URL.create("postgresql+psycopg", username="postgres", host="127.0.0.1", database="postgres"),
                     folder, [*as_user, str(binaries / "pg_ctl"), "-D", str(data)])
        started = time.perf_counter()
        try:
            run([*as_user, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                 "-E", "UTF8", "--locale=C"])
            for attempt in range(3):  # the free port can be taken between choosing and binding it
                port = free_port()
                options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 {FAST}"
                try:
                    run([*server._pg_ctl, "-o", options, "-l", str(folder / "log"), "-w", "-t", "60", "start"])
                    break
                except RuntimeError:
                    if attempt == 2 or "already in use" not in server.log():
                        raise
            server.url = server.url.set(port=port)
        except BaseException as error:
            log = server.log()
            server.stop()
            if isinstance(error, RuntimeError) and log:
                raise RuntimeError(f"{error}\nserver log:\n{log}") from None
            raise
        server.start_seconds = time.perf_counter() - started
        atexit.register(server.stop)  # in case the test session dies before its fixtures are torn down
        return server

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.folder / "log").read_text()[-4000:] if self.folder else ""
        return ""

    def stop(self) -> None:
        """Stop a cluster started here (immediately: it is thrown away) and delete its folder; idempotent."""
        if self.folder is None:
            return
        if (self.folder / "data" / "postmaster.pid").exists():
            subprocess.run([*self._pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def _admin(self) -> psycopg.Connection:
        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=10)

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A brand-new empty database, dropped (connections and all) afterwards; yields its URL."""
        name = f"arena_test_{uuid.uuid4().hex[:16]}"
        with self._admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield self.url.set(database=name).render_as_string(hide_password=False)
        finally:
            with self._admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def remove_left_behind() -> list[Path]:
    """Stop and delete the clusters, and delete the catalog caches, that test processes now dead made; returns
    the folders removed."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{CLUSTER_PREFIX}*"):
        if not _owner_alive(folder):
            _stop_cluster(folder)
            removed.append(folder)
    for folder in Path(tempfile.gettempdir()).glob(f"{CATALOG_PREFIX}*"):
        if not _owner_alive(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _owner_alive(folder: Path) -> bool:
    """Whether the process named in the folder's owner file runs (a folder without one is a minute to be made)."""
    try:
        pid = int((folder / OWNER).read_text())
    except (OSError, ValueError):
        return time.time() - folder.stat().st_mtime < 60
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_cluster(folder: Path) -> None:
    """Stop the cluster in `folder` (immediately) if one runs there, then delete the folder."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((folder / "data" / "postmaster.pid").read_text().split()[0])
        if b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes():  # not a process that took a freed id
            os.kill(pid, signal.SIGKILL)  # the postmaster; its children see it die and follow it out
    shutil.rmtree(folder, ignore_errors=True)


def run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stdout}{result.stderr}")
