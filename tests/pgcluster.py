"""A throwaway PostgreSQL cluster for tests, benchmarks and developers.

``python -m tests.pgcluster start`` creates a cluster in a new temporary folder (``initdb``),
starts it on a free port of 127.0.0.1 (``pg_ctl``) and prints its DSN and the command that
stops it; ``python -m tests.pgcluster stop FOLDER`` stops it by the postmaster's pid and
deletes the folder. The server refuses to run as root, so as root every server command runs
as the ``postgres`` user through ``runuser``. The superuser ``postgres`` logs in over TCP
with a password (scram-sha-256), so tests can also check what a wrong password does.

Binaries: ``$PG_BIN`` when set, else the newest ``/usr/lib/postgresql/*/bin`` (Debian's
layout), else whatever ``initdb`` is on ``PATH``.
"""

from __future__ import annotations

import argparse
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import List, Optional

SERVER_USER = "postgres"


class ClusterError(RuntimeError):
    """The cluster could not be created, started or stopped."""


@dataclass(frozen=True)
class Cluster:
    """A running throwaway cluster.

    Attributes:
        folder: Holds the data directory, the socket and the log.
        port: The TCP port on 127.0.0.1.
        password: The ``postgres`` superuser's password.
    """

    folder: str
    port: int
    password: str

    @property
    def dsn(self) -> str:
        """The superuser's DSN for the ``postgres`` database."""
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> str:
        """The data directory."""
        return os.path.join(self.folder, "data")

    def pid(self) -> Optional[int]:
        """The postmaster's pid, or ``None`` when the server is not running."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as fh:
                return int(fh.readline().strip())
        except (OSError, ValueError):
            return None


def bin_dir() -> str:
    """Return the folder holding ``initdb`` and ``pg_ctl``.

    Raises:
        ClusterError: No PostgreSQL server binaries are installed.
    """
    candidates = [os.environ.get("PG_BIN", "")]
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    candidates.append(os.path.dirname(on_path) if on_path else "")
    for folder in candidates:
        if folder and os.path.isfile(os.path.join(folder, "initdb")):
            return folder
    raise ClusterError(
        "PostgreSQL server binaries not found (install postgresql or set PG_BIN)"
    )


def _as_server_user(argv: List[str]) -> List[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVER_USER, "--"] + argv
    return argv


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(argv: List[str], what: str, folder: str) -> None:
    # From the cluster's folder: the server user may not be allowed into the caller's.
    done = subprocess.run(
        _as_server_user(argv),
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    if done.returncode != 0:
        raise ClusterError(f"{what} failed: {done.stdout.decode(errors='replace')}")


def start(parent: Optional[str] = None, timeout: float = 60.0) -> Cluster:
    """Create and start a cluster in a new folder under ``parent`` (the temp dir).

    Args:
        parent: Where to create the cluster's folder.
        timeout: Seconds to wait for the server to accept connections.

    Returns:
        The running cluster.

    Raises:
        ClusterError: initdb or the server failed (the folder is removed).
    """
    binaries = bin_dir()
    folder = tempfile.mkdtemp(prefix="spark-pg-", dir=parent)
    cluster = Cluster(folder, free_port(), secrets.token_hex(12))
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, SERVER_USER, SERVER_USER)
        pwfile = os.path.join(folder, "pw")
        with open(pwfile, "w") as fh:
            fh.write(cluster.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, SERVER_USER, SERVER_USER)
        _run(
            [
                os.path.join(binaries, "initdb"),
                "-D",
                cluster.data,
                "-U",
                "postgres",
                "--pwfile",
                pwfile,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            "initdb",
            folder,
        )
        os.unlink(pwfile)
        options = (
            f"-p {cluster.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={folder} -c max_connections=200"
        )
        _run(
            [
                os.path.join(binaries, "pg_ctl"),
                "-D",
                cluster.data,
                "-l",
                os.path.join(folder, "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ],
            "pg_ctl start",
            folder,
        )
    except BaseException:
        stop(cluster)
        raise
    return cluster


def stop(cluster: Cluster, *, remove: bool = True, timeout: float = 60.0) -> None:
    """Stop the server by its pid (fast shutdown) and remove the folder.

    Args:
        cluster: The cluster.
        remove: Delete the folder too.
        timeout: Seconds to wait for a fast shutdown before killing the server.
    """
    pid = cluster.pid()
    if pid is not None:
        _signal_and_wait(pid, signal.SIGINT, timeout)  # SIGINT: fast shutdown
    if remove:
        shutil.rmtree(cluster.folder, ignore_errors=True)


def restart(cluster: Cluster, timeout: float = 60.0) -> None:
    """Start a stopped cluster again on the same port (used by lost-connection tests).

    Args:
        cluster: A cluster stopped with ``stop(cluster, remove=False)``.
        timeout: Seconds to wait for it to accept connections.
    """
    options = (
        f"-p {cluster.port} -c listen_addresses=127.0.0.1 "
        f"-c unix_socket_directories={cluster.folder} -c max_connections=200"
    )
    _run(
        [
            os.path.join(bin_dir(), "pg_ctl"),
            "-D",
            cluster.data,
            "-l",
            os.path.join(cluster.folder, "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        ],
        "pg_ctl start",
        cluster.folder,
    )


def _signal_and_wait(pid: int, sig: int, timeout: float) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _load(folder: str) -> Cluster:
    with open(os.path.join(folder, "data", "postmaster.opts")) as fh:
        opts = fh.read().split()
    port = int(opts[opts.index('"-p"') + 1].strip('"'))
    return Cluster(folder, port, "")


def main(argv: Optional[List[str]] = None) -> int:
    """``start`` prints the DSN; ``stop FOLDER`` stops the cluster and removes FOLDER."""
    parser = argparse.ArgumentParser(prog="python -m tests.pgcluster")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start", help="start a throwaway cluster and print its DSN")
    stop_cmd = sub.add_parser("stop", help="stop the cluster in FOLDER and delete it")
    stop_cmd.add_argument("folder")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            cluster = start()
            print(cluster.dsn)
            print(
                f"stop it with: python -m tests.pgcluster stop {cluster.folder}",
                file=sys.stderr,
            )
        else:
            stop(_load(args.folder))
    except (ClusterError, OSError) as exc:
        print(f"pgcluster: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
