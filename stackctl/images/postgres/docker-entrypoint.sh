#!/usr/bin/env bash
# Entrypoint of stackctl's postgres image. It keeps the official postgres image's contract:
#   - PGDATA (default /var/lib/postgresql/data) is initialised when it is empty, with
#     POSTGRES_USER (default postgres), POSTGRES_PASSWORD and POSTGRES_DB (default: the user);
#     each also reads from a file named by VAR_FILE (Docker secrets);
#   - POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR and POSTGRES_HOST_AUTH_METHOD are honoured;
#   - /docker-entrypoint-initdb.d/*.sh, *.sql and *.sql.gz run once, on the first start;
#   - local connections are trusted, host connections need a password (scram-sha-256);
#   - a PGDATA made by another PostgreSQL major version is refused before anything runs or
#     changes (the official image would chown it, then let postgres fail on it);
#   - root only fixes ownership; postgres then replaces this script (exec) as the postgres user,
#     so that `docker stop` signals reach it.
set -Eeuo pipefail

# file_env VAR [DEFAULT]: VAR comes from $VAR, or from the file named by $VAR_FILE, or DEFAULT.
file_env() {
    local var="$1" default="${2:-}"
    local file_var="${var}_FILE"
    local value="$default"
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        echo "error: both $var and $file_var are set (but they are exclusive)" >&2
        exit 1
    fi
    if [ -n "${!var:-}" ]; then
        value="${!var}"
    elif [ -n "${!file_var:-}" ]; then
        value="$(<"${!file_var}")"
    fi
    export "$var"="$value"
    unset "$file_var"
}

refuse_without_password() {
    cat >&2 <<-'EOM'
	Error: Database is uninitialized and superuser password is not specified.
	       You must specify POSTGRES_PASSWORD to a non-empty value for the
	       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

	       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
	       connections without a password. This is *not* recommended.
	EOM
    exit 1
}

# refuse_other_major: exit before starting when PGDATA holds another major version's files.
# Nothing is started, upgraded, chowned or chmod-ed. The first two lines say what postgres
# itself would say (stackctl recognises the same text in the official image's logs).
refuse_other_major() {
    [ -s "$PGDATA/PG_VERSION" ] || return 0
    local found server
    found="$(tr -d '[:space:]' <"$PGDATA/PG_VERSION")"
    server="$(postgres -V)"                # "postgres (PostgreSQL) 17.12 (Debian 17.12-1)"
    server="${server#*) }"
    server="${server%%[!0-9]*}"
    [ "$found" != "$server" ] || return 0
    cat >&2 <<-EOM
	Error: database files are incompatible with server.
	       The data directory was initialized by PostgreSQL version $found, which is not compatible with this version $server.
	       PostgreSQL reads only its own major version's files: nothing was started and
	       nothing in $PGDATA was changed.
	       To move the data to PostgreSQL $server, dump it with a PostgreSQL $found image and restore the
	       dump into an empty data directory with this one: with stackctl, \`stackctl backup now db\`
	       while POSTGRES_IMAGE is still PostgreSQL $found, then \`stackctl restore db\` on the stack
	       running PostgreSQL $server with an empty database volume. Or run pg_upgrade (both versions'
	       binaries) on a copy of the files. To keep them as they are, run a PostgreSQL $found image.
	EOM
    exit 1
}

# psql as the superuser over the local socket (trusted), stopping at the first error.
run_psql() {
    psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "$POSTGRES_USER" "$@"
}

init_database() {
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    local auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
        refuse_without_password
    fi

    local -a args=(--username="$POSTGRES_USER" --auth-local=trust --auth-host="$auth")
    local -a extra
    read -r -a extra <<<"$POSTGRES_INITDB_ARGS"
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        args+=(--waldir="$POSTGRES_INITDB_WALDIR")
    fi
    local pwfile=""
    if [ -n "$POSTGRES_PASSWORD" ]; then
        # The password goes through a private temp file: never argv, never a layer.
        pwfile="$(mktemp)"  # mode 0600
        printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
        args+=(--pwfile="$pwfile")
    fi
    initdb "${args[@]}" "${extra[@]}" || { rm -f "$pwfile"; exit 1; }
    rm -f "$pwfile"
    printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

    # A socket-only server for the database and the init scripts.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
    run_psql --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
	SELECT format('CREATE DATABASE %I', :'db')
	WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
	EOSQL
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        [ -e "$f" ] || continue
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then
                    echo "$0: running $f"
                    "$f"
                else
                    echo "$0: sourcing $f"
                    # shellcheck source=/dev/null
                    . "$f"
                fi
                ;;
            *.sql) echo "$0: running $f"; run_psql --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) echo "$0: running $f"; gunzip -c "$f" | run_psql --dbname "$POSTGRES_DB" ;;
            *) echo "$0: ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "PostgreSQL init process complete; ready for start up."
}

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

if [ "$1" = postgres ]; then
    refuse_other_major
fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA"
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    chmod 00700 "$PGDATA" || :
    install -d -o postgres -g postgres -m 3777 /var/run/postgresql
    export HOME=/var/lib/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    init_database
fi

exec "$@"
