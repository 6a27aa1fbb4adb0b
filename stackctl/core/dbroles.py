"""The prod app's own database role: it owns POSTGRES_DB and is not a superuser.

POSTGRES_USER is the cluster's superuser (the db container creates it at initdb); the app
connects as DB_APP_USER instead, and the superuser is left to backup and restore. Every
`stackctl up --prod` runs `ensure_app_role` once db answers: it creates the role when it is
missing, sets its password (DB_APP_PASSWORD, read inside db from its secret file, never in
argv), and hands it the database and every object of the superuser's in it. A stack whose
volumes were made before the role existed (the app's tables owned by the superuser) is so
moved on its next `up --prod`, and the result says so.

psql runs inside db, as the superuser over the local socket (trusted there), through
`docker compose exec`: nothing is published and no password crosses the engine's API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from python_on_whales.exceptions import DockerException

from stackctl.errors import DockerCommandError, stderr_tail

if TYPE_CHECKING:
    from stackctl.core.stack import Stack

SERVICE = "db"
READY_SECONDS = 120  # db's first start (initdb) included
MARKER = "stackctl-role"
TABLES_MARKER = "stackctl-tables"

# $1 the app's role, $2 the seconds to wait; POSTGRES_USER and POSTGRES_DB are db's own.
# Over TCP like db's healthcheck: while initdb runs, postgres listens on its socket only.
SCRIPT = r"""
set -eu
app=$1
tries=$(($2 * 5))
until pg_isready -q -h 127.0.0.1 -U "$POSTGRES_USER" -d postgres; do
    tries=$((tries - 1))
    if [ "$tries" -le 0 ]; then
        echo "the database did not accept connections within $2 s" >&2
        exit 1
    fi
    sleep 0.2
done
psql -X -q -At -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \
    -v app="$app" -v db="$POSTGRES_DB" <<'EOSQL'
\set pw `cat /run/secrets/db_app_password`
SELECT coalesce((SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :'db'), '') AS owner \gset
SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') AS had_role \gset
\echo stackctl-role owner=:owner had_role=:had_role
SELECT format('CREATE ROLE %I', :'app') WHERE NOT :'had_role'::boolean \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L',
              :'app', :'pw') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'app') WHERE :'owner' <> :'app' \gexec
EOSQL
psql -X -q -At -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" \
    -v app="$app" -v su="$POSTGRES_USER" <<'EOSQL'
CREATE TEMP VIEW stackctl_own AS
SELECT n.oid, n.nspname FROM pg_namespace n
WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema';
CREATE TEMP VIEW stackctl_extension_member AS
SELECT classid, objid FROM pg_depend WHERE deptype = 'e';
SELECT count(*) AS tables FROM pg_class c JOIN stackctl_own s ON s.oid = c.relnamespace
WHERE c.relowner = :'su'::regrole AND c.relkind IN ('r', 'p') \gset
\echo stackctl-tables superuser_owned=:tables
SELECT format('ALTER SCHEMA %I OWNER TO %I', s.nspname, :'app')
FROM stackctl_own s JOIN pg_namespace n ON n.oid = s.oid
WHERE n.nspowner = :'su'::regrole
  AND (n.oid, 'pg_namespace'::regclass::oid) NOT IN (SELECT objid, classid FROM stackctl_extension_member) \gexec
SELECT format('ALTER %s %I.%I OWNER TO %I',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                             WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
              s.nspname, c.relname, :'app')
FROM pg_class c JOIN stackctl_own s ON s.oid = c.relnamespace
WHERE c.relowner = :'su'::regrole AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND (c.oid, 'pg_class'::regclass::oid) NOT IN (SELECT objid, classid FROM stackctl_extension_member)
  -- a column's sequence (serial, identity) follows its table
  AND NOT (c.relkind = 'S' AND EXISTS (
      SELECT FROM pg_depend d
      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'))) \gexec
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, :'app')
FROM pg_proc p JOIN stackctl_own s ON s.oid = p.pronamespace
WHERE p.proowner = :'su'::regrole AND p.prokind IN ('f', 'p')
  AND (p.oid, 'pg_proc'::regclass::oid) NOT IN (SELECT objid, classid FROM stackctl_extension_member) \gexec
SELECT format('ALTER %s %s OWNER TO %I', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
              t.oid::regtype, :'app')
FROM pg_type t JOIN stackctl_own s ON s.oid = t.typnamespace
WHERE t.typowner = :'su'::regrole AND t.typtype IN ('e', 'd', 'r')
  AND (t.oid, 'pg_type'::regclass::oid) NOT IN (SELECT objid, classid FROM stackctl_extension_member) \gexec
EOSQL
"""


@dataclass(frozen=True)
class AppRole:
    """What `ensure_app_role` found and did."""

    role: str
    database: str
    created: bool  # the role did not exist
    moved_from: str | None  # the database's owner before (the superuser), when it was moved

    def describe(self) -> str | None:
        """One line for the output when something changed, else None."""
        if self.moved_from is not None:
            return (
                f"moved database {self.database} from {self.moved_from} (a superuser) to its own role "
                f"{self.role} (not a superuser), which the app connects as from now on"
            )
        if self.created:
            return f"created the app's database role {self.role} (not a superuser), owner of {self.database}"
        return None


def _fields(output: str, marker: str) -> dict[str, str] | None:
    for line in output.splitlines():
        if line.startswith(marker + " "):
            return dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)
    return None


def parse_marker(output: str, *, role: str, database: str) -> AppRole:
    """The AppRole from the script's `stackctl-role owner=... had_role=...` and
    `stackctl-tables superuser_owned=N` lines. A database is "moved" when it held tables of
    the superuser's (a stack from before the role); a new cluster's empty one is not."""
    found, tables = _fields(output, MARKER), _fields(output, TABLES_MARKER)
    if found is None or tables is None:
        raise DockerCommandError("setting up the app's database role printed nothing stackctl recognises")
    owner = found.get("owner", "")
    created = found.get("had_role") != "t"
    held_tables = tables.get("superuser_owned", "0") not in ("", "0")
    moved = owner if owner and owner != role and held_tables else None
    return AppRole(role, database, created, moved)


def ensure_app_role(stack: Stack) -> AppRole:
    """Create or update the app's role in db and give it the app's database (idempotent)."""
    db = stack.config.database
    argv = ["sh", "-c", SCRIPT, "stackctl-dbroles", db.db_app_user, str(READY_SECONDS)]
    try:
        output = stack.client.compose.execute(SERVICE, argv, tty=False)
    except DockerException as exc:
        raise DockerCommandError(
            f"setting up the app's database role {db.db_app_user} failed (exit {exc.return_code})\n"
            f"{stderr_tail(exc.stderr)}".rstrip(),
        ) from None
    return parse_marker(str(output or ""), role=db.db_app_user, database=db.postgres_db)
