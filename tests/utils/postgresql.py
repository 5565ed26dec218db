"""A PostgreSQL server of its own for the tests, the integration run and the benchmarks: initdb and pg_ctl in a
temporary directory, listening on a free port of 127.0.0.1 only, stopped and removed at the end.

    with running_postgresql() as server:
        server.url()                   # postgresql://postgres@127.0.0.1:PORT/postgres (the superuser)
        server.password                # its password (scram-sha-256; the URL has none)
        server.execute("CREATE ROLE ...")
        server.restart()               # pg_ctl restart: every connection is dropped

    python tests/utils/postgresql.py [--config FILE] -- CMD...

runs CMD with THINGSPACE_LEDGER_URL, THINGSPACE_LEDGER_PASSWORD and a fresh THINGSPACE_LEDGER_SCHEMA in its
environment; with --config it adds them to that YAML file as Ansible variables (thingspace_ledger_url, ...) instead,
for ansible-test's integration_config.yml, and leaves the environment alone so that only the targets that ask for
the PostgreSQL ledger use it.

The binaries come from PG_BINDIR, else the directory of ``pg_config --bindir``, else the newest
/usr/lib/postgresql/*/bin. The server refuses to run as root: as root it runs as the ``postgres`` user, in a
temporary directory given to that user. Without the binaries, ``PostgresqlUnavailable`` says what is missing;
the pytest fixture ``postgresql`` then skips and the command runs without the variables (its PostgreSQL targets
end early), except when the environment variable CI is set (``.ci/run`` sets it), where a missing server fails
the run.

tests/utils/mutation.py starts one server per mutmut child and lists them in THINGSPACE_TEST_POSTGRESQL_POOL: mutmut
runs a pytest session per mutant, and the fixture then takes a server of the pool that no other session holds
instead of starting one (tests restart their server and read its sessions, so two sessions at once cannot share it).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

SUPERUSER = "postgres"
# The user the server runs as when the tests run as root.
SERVER_USER = "postgres"
# JSON list of the servers (Server.description()) that test sessions take one at a time.
POOL = "THINGSPACE_TEST_POSTGRESQL_POOL"


class PostgresqlUnavailable(Exception):
    """No PostgreSQL server binaries on this machine (the reason says where they were looked for)."""


def bindir():
    """The directory of initdb, pg_ctl and postgres."""
    candidates = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            candidates.append(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
    candidates.extend(sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(path.split("/")[-2]) if path.split("/")[-2].isdigit() else 0,
                             reverse=True))
    for directory in candidates:
        if all(os.access(os.path.join(directory, name), os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise PostgresqlUnavailable("no PostgreSQL server binaries (initdb, pg_ctl, postgres) in PG_BINDIR, pg_config --bindir or "
                                "/usr/lib/postgresql/*/bin; install PostgreSQL (Debian: apt-get install postgresql) or set PG_BINDIR")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A running server: ``url`` (the superuser, no password in it), ``password``, ``port``, ``execute``, ``restart``."""

    def __init__(self, directory, binaries, durable):
        self.directory = directory
        self.data = os.path.join(directory, "data")
        self.log = os.path.join(directory, "server.log")
        self.binaries = binaries
        self.durable = durable
        self.password = secrets.token_urlsafe(18)
        self.port = None
        self._as_server_user = os.geteuid() == 0

    def url(self, user=SUPERUSER, dbname="postgres", **params):
        query = "&".join("%s=%s" % item for item in params.items())
        return "postgresql://%s@127.0.0.1:%d/%s%s" % (user, self.port, dbname, "?" + query if query else "")

    def _run(self, *command):
        kwargs = {}
        if self._as_server_user:
            server_user = pwd.getpwnam(SERVER_USER)
            kwargs = {"user": server_user.pw_uid, "group": server_user.pw_gid, "extra_groups": []}
        result = subprocess.run([os.path.join(self.binaries, command[0]), *command[1:]], capture_output=True, text=True, cwd=self.directory,
                                check=False, **kwargs)
        if result.returncode:
            raise RuntimeError("%s failed (%d): %s\n%s%s" % (" ".join(command), result.returncode, result.stdout, result.stderr, self._log_tail()))
        return result.stdout

    def _log_tail(self):
        with contextlib.suppress(OSError), open(self.log, encoding="utf-8", errors="replace") as handle:
            return "--- server log ---\n" + handle.read()[-3000:]
        return ""

    def init(self):
        pwfile = os.path.join(self.directory, "pwfile")
        with open(pwfile, "w", encoding="utf-8") as handle:
            handle.write(self.password + "\n")
        self._chown(pwfile)
        self._run("initdb", "-D", self.data, "-U", SUPERUSER, "--pwfile", pwfile, "--auth-local=trust", "--auth-host=scram-sha-256",
                  "-E", "UTF8", "--locale=C", "--no-instructions")
        os.unlink(pwfile)

    def _chown(self, path):
        if self._as_server_user:
            server_user = pwd.getpwnam(SERVER_USER)
            os.chown(path, server_user.pw_uid, server_user.pw_gid)

    def start(self):
        settings = ["-c listen_addresses=127.0.0.1", "-c unix_socket_directories=%s" % self.directory, "-c max_connections=200"]
        if not self.durable:
            settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        for attempt in range(5):
            self.port = _free_port()
            try:
                self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o", " ".join(["-p %d" % self.port, *settings]), "start")
                return
            except RuntimeError:
                if attempt == 4:
                    raise

    def stop(self, mode="fast"):
        self._run("pg_ctl", "-D", self.data, "-w", "-m", mode, "stop")

    def restart(self):
        """Stop (dropping every connection) and start again on the same port."""
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-m", "fast", "restart")

    def connect(self, dbname="postgres"):
        import psycopg

        return psycopg.connect(self.url(dbname=dbname), password=self.password, autocommit=True)

    def execute(self, sql, args=None, dbname="postgres"):
        """Run ``sql`` as the superuser; the rows when it returns some."""
        with self.connect(dbname) as db:
            cursor = db.execute(sql, args)
            return cursor.fetchall() if cursor.description else None

    def description(self):
        """What ``Server.attach`` needs to use this server from another process."""
        return {"directory": self.directory, "binaries": self.binaries, "port": self.port, "password": self.password}

    @classmethod
    def attach(cls, description):
        server = cls(description["directory"], description["binaries"], durable=False)
        server.port, server.password = description["port"], description["password"]
        return server

    def reset(self):
        """Drop the roles and schemas that tests made (every one but the superuser and the system's)."""
        from psycopg import sql

        with self.connect() as db:
            roles = [sql.Identifier(name) for (name,) in db.execute("SELECT rolname FROM pg_roles WHERE rolname <> %s AND rolname NOT LIKE 'pg\\_%%'",
                                                                    (SUPERUSER,))]
            if roles:
                db.execute(sql.SQL("DROP OWNED BY {0} CASCADE; DROP ROLE {0}").format(sql.SQL(", ").join(roles)))
            schemas = [sql.Identifier(name) for (name,) in db.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                                                                      "AND nspname NOT IN ('public', 'information_schema')")]
            if schemas:
                db.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.SQL(", ").join(schemas)))

    def new_schema(self):
        """A schema name no test used yet (the ledger creates the schema on first use)."""
        return "t_" + uuid.uuid4().hex[:16]


@contextlib.contextmanager
def running_postgresql(durable=False, binaries=None):
    """A started server, stopped and removed at the end. ``durable`` keeps fsync on (the benchmarks); the tests
    run without it, which only matters if the machine crashes."""
    binaries = binaries or bindir()
    directory = tempfile.mkdtemp(prefix="thingspace-pg-")
    server = Server(directory, binaries, durable)
    server._chown(directory)
    try:
        server.init()
        server.start()
        try:
            yield server
        finally:
            with contextlib.suppress(RuntimeError):
                server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _take_from_pool(servers):
    """A server of ``servers`` that no other session holds, emptied of what the last one made, and the lock file that
    holds it (an flock: free again when this process ends, however it ends)."""
    while True:
        for description in servers:
            handle = os.open(os.path.join(description["directory"], "session.lock"), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                continue
            server = Server.attach(description)
            server.reset()
            return server, handle
        time.sleep(0.05)


@pytest.fixture(scope="session")
def postgresql():
    """One server for the whole test session (a conftest imports this fixture): one of the pool of POOL when it is
    set, else a new one."""
    if os.environ.get(POOL):
        server, handle = _take_from_pool(json.loads(os.environ[POOL]))
        try:
            yield server
        finally:
            os.close(handle)
        return
    try:
        context = running_postgresql()
        server = context.__enter__()
    except PostgresqlUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail("CI is set, so the PostgreSQL tests must run: %s" % exc)
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        context.__exit__(None, None, None)


def main():
    import argparse

    import yaml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="add the ledger variables to this YAML file (created when missing)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("no command given")
    try:
        binaries = bindir()
    except PostgresqlUnavailable as exc:
        if os.environ.get("CI"):
            sys.exit("CI is set, so the PostgreSQL tests must run: %s" % exc)
        sys.stderr.write("Running without a PostgreSQL server, the PostgreSQL ledger tests skip: %s\n" % exc)
        sys.exit(subprocess.call(command))
    with running_postgresql(binaries=binaries) as server:
        ledger = {"ledger_url": server.url(), "ledger_password": server.password, "ledger_schema": server.new_schema()}
        env = dict(os.environ)
        if options.config:
            variables = {}
            if os.path.exists(options.config):
                with open(options.config, encoding="utf-8") as handle:
                    variables = yaml.safe_load(handle) or {}
            variables.update({"thingspace_" + name: value for name, value in ledger.items()})
            os.makedirs(os.path.dirname(os.path.abspath(options.config)), exist_ok=True)
            with open(options.config, "w", encoding="utf-8") as handle:
                yaml.safe_dump(variables, handle)
        else:
            env.update({"THINGSPACE_" + name.upper(): value for name, value in ledger.items()})
        code = subprocess.call(command, env=env)
    sys.exit(code)


if __name__ == "__main__":
    main()
