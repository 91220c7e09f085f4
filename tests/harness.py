"""Real, throwaway servers for the test suite: PostgreSQL, MariaDB and the HTTP test server.

fastio's promises (cancellation reaching the server, pools surviving restarts, sockets
closed on cancel) can only be checked against real servers, and CI machines may have
none running, so each server is started here from the installed binaries, in its own
temp dir, on a free port of 127.0.0.1, and never touches a system-wide instance.

`FASTIO_PG_DSN` / `FASTIO_MYSQL_DSN` point the suite at existing servers instead; those
cannot be stopped or restarted, so fault tests check `.can_restart` (or get skipped by
`stop()`/`start()`/`restart()`).

Processes and temp dirs are removed at session end, at interpreter exit, on SIGTERM and
SIGHUP, and (Linux) the servers die with the test process even if it is SIGKILLed; temp
dirs left by a killed session are swept by the next one.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Callable, ClassVar, NoReturn, TypeVar

import pytest

__all__ = [
    "ExternalServer",
    "HTTPServer",
    "MariaDBServer",
    "PostgresServer",
    "ServerStartError",
    "http_server",
    "mysql_server",
    "pg_server",
]

STARTUP_TIMEOUT = 60.0
"""Seconds a server gets to accept connections; a slow CI box needs more than a laptop."""
STOP_TIMEOUT = 30.0
"""Seconds a server gets to shut down cleanly before its whole process group is killed."""
TEMP_PREFIX = "fastio-test-"
"""Every temp dir starts with this, so leftovers are easy to recognise (and to sweep)."""

LOCALHOST = "127.0.0.1"
USER = "fastio"
PASSWORD = "fastio"
DATABASE = "fastio"
PG_MD5_USER = "fastio_md5"
"""A role whose password is stored as md5, so both md5 and SCRAM auth can be tested."""
PG_SUPERUSER = "postgres"

_OWNER_FILE = "owner.pid"
_BIND_ATTEMPTS = 3
_ADDRESS_IN_USE = "Address already in use"


class ServerStartError(RuntimeError):
    """A server could not be set up or did not become ready; the message has its log tail."""


# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    """Ask the kernel for a free port; the small race until the server binds is retried."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _temp_base(for_uid: int | None) -> str:
    """The temp root, unless another user (postgres, when we are root) cannot enter it."""
    base = tempfile.gettempdir()
    if for_uid is None:
        return base
    path = Path(base).resolve()
    for part in (path, *path.parents):
        if not part.stat().st_mode & 0o001:
            return "/tmp"
    return base


def _sweep_stale_dirs() -> None:
    """Remove temp dirs of earlier sessions that died (SIGKILL) before cleaning up.

    A dir is stale when the pid in its owner file is gone, or when it has no owner file
    a minute after it was made (the owner file is written right after the dir). Dirs of
    live sessions (another checkout running its tests at the same time) are left alone.
    """
    for base in {tempfile.gettempdir(), "/tmp"}:
        for path in glob.glob(os.path.join(base, TEMP_PREFIX + "*")):
            stale = False
            try:
                stale = not _pid_alive(int(Path(path, _OWNER_FILE).read_text()))
            except (OSError, ValueError):
                with contextlib.suppress(OSError):
                    stale = time.time() - os.stat(path).st_mtime > 60
            if stale:
                shutil.rmtree(path, ignore_errors=True)


def _make_temp_dir(kind: str, owner_uid: int | None = None, owner_gid: int | None = None) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{kind}-", dir=_temp_base(owner_uid)))
    path.joinpath(_OWNER_FILE).write_text(str(os.getpid()))
    if owner_uid is not None and owner_gid is not None:
        os.chown(path, owner_uid, owner_gid)
    return path


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"<no log: {exc}>"


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process started with start_new_session=True together with its workers."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _find_executable(names: list[str], dirs: list[str]) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for directory in dirs:
            candidate = os.path.join(directory, name)
            if os.access(candidate, os.X_OK):
                return candidate
    return None


def _dies_with_parent(sig: int) -> Callable[[], None] | None:
    """A preexec_fn that makes the child receive `sig` when the test process dies.

    This is what keeps a SIGKILLed pytest from leaving servers behind. The kernel ties
    the setting to the spawning *thread*, so it is only used from the main thread: a
    server restarted from an executor thread must not die when that thread exits.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, sig)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


# ---------------------------------------------------------------- cleanup registry

_LIVE: list[_ManagedServer] = []
_LIVE_LOCK = threading.Lock()
_HOOKS_INSTALLED = False
_CLEANUP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _close_all() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in reversed(servers):
        with contextlib.suppress(Exception):
            server.close()


def _on_fatal_signal(signum: int, frame: FrameType | None) -> None:
    """Unwind as Ctrl-C does, so fixture teardown and atexit stop the servers.

    Cleaning up inside the handler instead could deadlock: it may interrupt a
    Popen.wait() that holds the lock a second wait() needs. A second signal of the same
    kind kills the process at once (the servers then die with it, see _dies_with_parent).
    """
    signal.signal(signum, signal.SIG_DFL)
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


def _install_hooks() -> None:
    """Register cleanup at exit and on fatal signals, once, when the first server is made.

    Only signals still at their default action are taken over: a runner that ignores
    SIGHUP (nohup) or handles SIGTERM itself keeps its behaviour.
    """
    global _HOOKS_INSTALLED
    if _HOOKS_INSTALLED:
        return
    _HOOKS_INSTALLED = True
    _sweep_stale_dirs()
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread():
        for sig in _CLEANUP_SIGNALS:
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, _on_fatal_signal)


# ------------------------------------------------------------------ base server

_Server = TypeVar("_Server", bound="_ManagedServer")


class _ManagedServer:
    """A server process this harness owns: temp dir, log file, start/stop/restart/close.

    Subclasses say how to initialise the data dir once, which command runs the server,
    how to tell it is ready, and what to do after the very first start.
    """

    kind: ClassVar[str]
    stop_signal: ClassVar[int] = signal.SIGTERM
    can_restart: ClassVar[bool] = True
    """Fault tests check this: a server given by DSN cannot be stopped or restarted."""

    def __init__(
        self, port: int, owner_uid: int | None = None, owner_gid: int | None = None
    ) -> None:
        self.host = LOCALHOST
        self.port = port
        _install_hooks()
        self.tmpdir = _make_temp_dir(self.kind, owner_uid, owner_gid)
        with _LIVE_LOCK:
            _LIVE.append(self)  # from here on, exit and fatal signals clean it up
        self.log_path = self.tmpdir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._initialized = False
        self._started_once = False
        self._closed = False

    # -- subclass hooks

    def _initialize(self) -> None:
        """One-time setup of the data dir before the first start."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _popen_kwargs(self) -> dict[str, Any]:
        return {}

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _after_first_start(self) -> None:
        """One-time work that needs the running server (roles, databases)."""

    # -- public API

    def start(self) -> None:
        """Start the server (initialising it the first time) and wait until it is ready.

        A restarted server keeps its port and data. Only the first start may move to
        another port, when a different process took the chosen one in the meantime.
        """
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if self.is_running():
            return
        if not self._initialized:
            self._initialize()
            self._initialized = True
        for attempt in range(1, _BIND_ATTEMPTS + 1):
            offset = _file_size(self.log_path)
            self._spawn()
            try:
                self._wait_ready()
                break
            except ServerStartError:
                self._kill()
                port_taken = _ADDRESS_IN_USE in _read_from(self.log_path, offset)
                if self._started_once or not port_taken or attempt == _BIND_ATTEMPTS:
                    raise
                self.port = _free_port()
        if not self._started_once:
            try:
                self._after_first_start()
            except BaseException:
                self._kill()
                raise
            self._started_once = True

    def stop(self) -> int | None:
        """Shut the server down cleanly (connections are dropped); return its exit code.

        Returns None when it was not running. A server that does not stop within
        STOP_TIMEOUT is killed with its whole process group.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.stop_signal)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
        return proc.returncode

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start()

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        """Stop the server and remove its temp dir; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop()
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            with _LIVE_LOCK:
                if self in _LIVE:
                    _LIVE.remove(self)

    def log_tail(self, limit: int = 4000) -> str:
        """The end of the server's log, for error messages and debugging failed tests."""
        return _tail(self.log_path, limit)

    def __enter__(self: _Server) -> _Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state} {self.tmpdir}>"

    # -- process handling

    def _spawn(self) -> None:
        kwargs = self._popen_kwargs()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tmpdir,
                start_new_session=True,  # Ctrl-C in the terminal must not reach the servers
                preexec_fn=_dies_with_parent(self.stop_signal),
                **kwargs,
            )

    def _run_step(self, cmd: list[str], what: str, timeout: float = 120.0) -> None:
        """Run a setup step (initdb, ...) with its output in the server log.

        It runs in a session of its own so that a timeout or an interrupt can kill it with
        everything it started before the temp dir is removed under it.
        """
        offset = _file_size(self.log_path)
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tmpdir,
                start_new_session=True,
                **self._popen_kwargs(),
            )
        code: int | None
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            code = None
        except BaseException:  # interrupted: it must not go on writing into a removed dir
            _kill_group(proc)
            raise
        if code != 0:
            result = f"timed out after {timeout:.0f} s" if code is None else f"exited {code}"
            output = _read_from(self.log_path, offset)
            raise ServerStartError(f"{what} {result}: {' '.join(cmd)}\n{output}")

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        pause = 0.02
        while True:
            code = self._proc.poll()
            if code is not None:
                raise self._start_error(f"exited with code {code} during startup")
            if self._is_ready():
                return
            if time.monotonic() > deadline:
                raise self._start_error(f"was not ready after {STARTUP_TIMEOUT:.0f} s")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)

    def _start_error(self, what: str) -> ServerStartError:
        return ServerStartError(
            f"{type(self).__name__} on port {self.port} {what}.\n"
            f"command: {' '.join(self._command())}\n"
            f"log {self.log_path} (tail):\n{self.log_tail()}"
        )

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _kill_group(proc)


# ------------------------------------------------------------------- PostgreSQL


def _pg_bin_dirs() -> list[str]:
    """Candidate bin dirs, newest Debian-style version first, then whatever PATH has."""

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    dirs += glob.glob("/usr/pgsql-*/bin") + ["/usr/local/pgsql/bin"]
    on_path = shutil.which("postgres")
    if on_path:
        dirs.append(os.path.dirname(on_path))
    return dirs


def _find_pg_bin() -> Path:
    needed = ("initdb", "postgres", "pg_isready", "psql")
    for directory in _pg_bin_dirs():
        if all(os.access(os.path.join(directory, name), os.X_OK) for name in needed):
            return Path(directory)
    raise ServerStartError(
        f"PostgreSQL server binaries ({', '.join(needed)}) not found in /usr/lib/postgresql/*/bin"
        " or PATH: install postgresql, or set FASTIO_PG_DSN to use an existing server"
    )


class PostgresServer(_ManagedServer):
    """A throwaway PostgreSQL cluster, tuned for speed over durability.

    TCP on 127.0.0.1 asks for a password (`md5` in pg_hba: SCRAM for `fastio`, whose
    password is stored as SCRAM, md5 for `fastio_md5`); the unix socket in the temp dir
    trusts everyone, which gives tests superuser access as `postgres`.
    """

    kind = "pg"
    stop_signal = signal.SIGINT  # "fast" shutdown: disconnects clients instead of waiting
    user = USER
    password = PASSWORD
    database = DATABASE
    md5_user = PG_MD5_USER
    superuser = PG_SUPERUSER

    def __init__(self) -> None:
        self.bin_dir = _find_pg_bin()
        self._run_as = self._postgres_account() if os.geteuid() == 0 else None
        uid, gid = (self._run_as.pw_uid, self._run_as.pw_gid) if self._run_as else (None, None)
        super().__init__(_free_port(), uid, gid)
        self.data_dir = self.tmpdir / "data"
        self.socket_dir = str(self.tmpdir)

    @staticmethod
    def _postgres_account() -> pwd.struct_passwd:
        """postgres refuses to run as root, so root runs it as the `postgres` user."""
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise ServerStartError(
                "running as root but there is no 'postgres' system user to run PostgreSQL as"
            ) from None

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    def _popen_kwargs(self) -> dict[str, Any]:
        if self._run_as is None:
            return {}
        env = dict(os.environ, HOME=self._run_as.pw_dir, USER="postgres", LOGNAME="postgres")
        return {
            "user": self._run_as.pw_uid,
            "group": self._run_as.pw_gid,
            "extra_groups": [],
            "env": env,
        }

    def _initialize(self) -> None:
        initdb = [
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.superuser,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]
        self._run_step(initdb, "initdb")
        settings = {
            "listen_addresses": f"'{LOCALHOST}'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": "200",
            "shared_buffers": "128MB",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "password_encryption": "'scram-sha-256'",
            "timezone": "'UTC'",
            "logging_collector": "off",
        }
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# fastio test harness\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        (self.data_dir / "pg_hba.conf").write_text(
            f"local all all trust\nhost all all {LOCALHOST}/32 md5\nhost all all ::1/128 md5\n"
        )

    def _command(self) -> list[str]:
        return [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]

    def _is_ready(self) -> bool:
        probe = [
            str(self.bin_dir / "pg_isready"),
            "-q",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-t",
            "2",
        ]
        try:
            return subprocess.run(probe, timeout=5, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _after_first_start(self) -> None:
        statements = [
            f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'",
            f"CREATE DATABASE {self.database} OWNER {self.user}",
            "SET password_encryption = 'md5'",
            f"CREATE ROLE {self.md5_user} LOGIN PASSWORD '{self.password}'",
        ]
        psql = [
            str(self.bin_dir / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.socket_dir,
            "-p",
            str(self.port),
            "-U",
            self.superuser,
            "-d",
            "postgres",
        ]
        for statement in statements:
            psql += ["-c", statement]
        self._run_step(psql, "creating the fastio role and database", timeout=60)


class TlsPostgresServer(PostgresServer):
    """A PostgreSQL cluster that also accepts TLS, with a self-signed certificate."""

    def _initialize(self) -> None:
        super()._initialize()
        cert, key = self.data_dir / "server.crt", self.data_dir / "server.key"
        openssl = [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ]
        self._run_step(openssl, "making a self-signed certificate")
        key.chmod(0o600)
        if self._run_as is not None:
            for f in (cert, key):
                os.chown(f, self._run_as.pw_uid, self._run_as.pw_gid)
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n")


# ---------------------------------------------------------------------- MariaDB

_MYSQL_DIRS = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/local/mysql/bin"]


class MariaDBServer(_ManagedServer):
    """A throwaway MariaDB server, tuned for speed over durability.

    The `fastio` account exists for '%', '127.0.0.1' and 'localhost' (unix socket), with
    all privileges on the `fastio` database. It is created by an --init-file, which the
    server runs before it accepts connections, so "accepts connections" means "ready".
    """

    kind = "mysql"
    user = USER
    password = PASSWORD
    database = DATABASE

    def __init__(self) -> None:
        server = _find_executable(["mariadbd", "mysqld"], _MYSQL_DIRS)
        install = _find_executable(["mariadb-install-db", "mysql_install_db"], _MYSQL_DIRS)
        if server is None or install is None:
            raise ServerStartError(
                "MariaDB server binaries (mariadbd, mariadb-install-db) not found in PATH or "
                f"{', '.join(_MYSQL_DIRS)}: install mariadb-server, or set FASTIO_MYSQL_DSN "
                "to use an existing server"
            )
        self.server_bin = server
        self.install_bin = install
        super().__init__(_free_port())
        self.data_dir = self.tmpdir / "data"
        self.unix_socket = str(self.tmpdir / "mysqld.sock")
        self.init_file = self.tmpdir / "init.sql"

    @property
    def dsn(self) -> str:
        return f"mysql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    def _root_args(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def _initialize(self) -> None:
        install = [
            self.install_bin,
            "--no-defaults",
            f"--datadir={self.data_dir}",
            "--skip-test-db",
            "--skip-name-resolve",
            *self._root_args(),
        ]
        self._run_step(install, "mariadb-install-db")
        account = f"'{self.user}'@'{{host}}' IDENTIFIED BY '{self.password}'"
        lines = [f"CREATE DATABASE IF NOT EXISTS `{self.database}`;"]
        for host in ("%", LOCALHOST, "localhost"):
            lines.append(f"CREATE USER IF NOT EXISTS {account.format(host=host)};")
            lines.append(f"GRANT ALL ON `{self.database}`.* TO '{self.user}'@'{host}';")
        self.init_file.write_text("\n".join(lines) + "\n")

    def _command(self) -> list[str]:
        return [
            self.server_bin,
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--socket={self.unix_socket}",
            f"--pid-file={self.tmpdir / 'mysqld.pid'}",
            f"--port={self.port}",
            f"--bind-address={LOCALHOST}",
            f"--init-file={self.init_file}",
            *self._root_args(),
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--innodb-buffer-pool-size=64M",
            "--performance-schema=0",
            "--max-connections=200",
            # Readiness probes and fault tests abort handshakes; never block 127.0.0.1.
            "--max-connect-errors=1000000000",
            "--max-allowed-packet=64M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--default-time-zone=+00:00",
        ]

    def _is_ready(self) -> bool:
        """Ready when the server greets with a protocol-10 handshake, not an error packet."""
        try:
            with socket.create_connection((self.host, self.port), timeout=2) as sock:
                header = sock.recv(5)
        except OSError:
            return False
        return len(header) == 5 and header[4] == 10


# ------------------------------------------------------------------ HTTP server

_HTTPSERVER_SCRIPT = Path(__file__).with_name("httpserver.py")
_LISTENING = re.compile(rb"^LISTENING (\d+)$", re.MULTILINE)


class HTTPServer(_ManagedServer):
    """tests/httpserver.py in a subprocess, so a blocked or cancelled client in the test
    process can never stall the server, and a restart really drops every connection."""

    kind = "http"

    def __init__(self) -> None:
        super().__init__(0)  # the server binds port 0 itself and prints the port it got
        self._want_port = 0  # then restarts ask for that same port
        self._log_offset = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _spawn(self) -> None:
        self._log_offset = _file_size(self.log_path)
        super()._spawn()

    def _command(self) -> list[str]:
        return [
            sys.executable,
            str(_HTTPSERVER_SCRIPT),
            "--host",
            self.host,
            "--port",
            str(self._want_port),
        ]

    def _popen_kwargs(self) -> dict[str, Any]:
        return {"env": dict(os.environ, PYTHONUNBUFFERED="1")}

    def _is_ready(self) -> bool:
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            match = _LISTENING.search(log.read())
        if match is None:
            return False
        self.port = self._want_port = int(match.group(1))
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False


# --------------------------------------------------------------- external servers


class ExternalServer:
    """A server given by DSN (FASTIO_PG_DSN / FASTIO_MYSQL_DSN) instead of started here.

    It has the same connection attributes as the managed servers, but this harness does
    not own it: stop/start/restart skip the calling test, and close() leaves it alone.
    """

    can_restart = False
    socket_dir: str | None = None
    unix_socket: str | None = None
    md5_user: str | None = None

    def __init__(self, dsn: str, default_port: int) -> None:
        parts = urllib.parse.urlsplit(dsn)
        self.dsn = dsn
        self.host = parts.hostname or LOCALHOST
        self.port = parts.port or default_port
        self.user = urllib.parse.unquote(parts.username or "")
        self.password = urllib.parse.unquote(parts.password or "")
        self.database = urllib.parse.unquote(parts.path.lstrip("/")) or self.user

    def _cannot(self, what: str) -> NoReturn:
        pytest.skip(f"cannot {what} the external server at {self.host}:{self.port} (from DSN)")

    def start(self) -> None:
        self._cannot("start")

    def stop(self) -> int | None:
        self._cannot("stop")

    def restart(self) -> None:
        self._cannot("restart")

    def is_running(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=2):
                return True
        except OSError:
            return False

    def close(self) -> None:
        """Nothing to do: the server belongs to whoever gave the DSN."""

    def __repr__(self) -> str:
        return f"<ExternalServer {self.host}:{self.port}/{self.database}>"


# ----------------------------------------------------------------------- fixtures


def _session_server(factory: Callable[[], _ManagedServer]) -> Iterator[Any]:
    server = factory()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer | ExternalServer]:
    """PostgreSQL for the whole session, started on first use (or FASTIO_PG_DSN)."""
    dsn = os.environ.get("FASTIO_PG_DSN")
    if dsn:
        yield ExternalServer(dsn, 5432)
    else:
        yield from _session_server(PostgresServer)


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[MariaDBServer | ExternalServer]:
    """MariaDB for the whole session, started on first use (or FASTIO_MYSQL_DSN)."""
    dsn = os.environ.get("FASTIO_MYSQL_DSN")
    if dsn:
        yield ExternalServer(dsn, 3306)
    else:
        yield from _session_server(MariaDBServer)


@pytest.fixture(scope="session")
def http_server() -> Iterator[HTTPServer]:
    """The HTTP test server (tests/httpserver.py) for the whole session, started on first use."""
    yield from _session_server(HTTPServer)
