#!/usr/bin/env bash
# restore_db.sh [--no-checksum] [--allow-foreign] [--drop-old] FILE   restore FILE into POSTGRES_DB
# restore_db.sh [--no-checksum] --check FILE        integrity checks only
# restore_db.sh [--no-checksum] --precheck FILE     step 1 alone, as a restore makes it
# restore_db.sh [--no-checksum] --verify FILE       restore into a scratch db, count, drop it
# restore_db.sh --drop-old-only NAME                drop a <db>_pre_restore_<ts> database
#
# FILE is a path or a backup name (looked up in DB_BACKUPS_DIR, then /backups/incoming); a
# name starting with - is refused (put `--` before FILE). It may be a pg_dump archive
# (custom, tar, or a directory-format folder) or plain SQL, each maybe gzipped (`.sql.gz`,
# as cookiecutter-django's `pg_dump | gzip` writes).
# 1. Integrity, before the live database is touched: the NAME.sha256 sidecar must match (a
#    missing one is refused unless --no-checksum; the hash is computed while step 2 loads
#    and checked before step 3), .age files are decrypted with the identity file
#    BACKUP_AGE_IDENTITY, gzip is undone, and pg_restore must list the archive (and read
#    all of it with --check, or when no matching checksum vouches for it). There must be
#    room in /backups for the decrypted and unzipped copies. --precheck stops here, having
#    hashed the file before anything else (what `stackctl restore db` asks before it stops web).
# 2. Restore into a new scratch database <db>_restore_<ts>; on failure it is dropped and
#    the live database was never touched. Plain SQL runs with psql in restricted mode (no
#    backslash commands) as a throwaway role that owns only the scratch database.
# 3. The scratch database must be this app's: a django_migrations table whose history fits
#    the live database's (one is a subset of the other, with an app of the project's own in
#    common). Otherwise the restore is refused, unless --allow-foreign.
# 4. Swap in one transaction: <db> becomes <db>_pre_restore_<ts>, the scratch becomes <db>.
# 5. With --drop-old the previous database is dropped, else its name is printed.
# Prints one JSON line: {"file", "format", "tables", "rows", "seconds", "old_database", "steps", ...};
# "steps" holds each step's seconds (integrity, load, count, checksum, app_check, swap, drop).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=backup_common.sh
. "$(dirname -- "$(readlink -f -- "$0")")/backup_common.sh"

mode=restore
read_all=1  # --check reads the whole archive; --precheck only when no checksum vouches for it
skip_checksum=0
drop_old=0
allow_foreign=0
given=""
while [ $# -gt 0 ]; do
    case "$1" in
        --check) mode=check; shift ;;
        --precheck) mode=check; read_all=0; shift ;;
        --verify) mode=verify; shift ;;
        --no-checksum) skip_checksum=1; shift ;;
        --drop-old) drop_old=1; shift ;;
        --allow-foreign) allow_foreign=1; shift ;;
        --drop-old-only) mode=drop; given=${2:?--drop-old-only needs a database name}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        --) [ $# = 2 ] || die "one FILE after --" 2; given=$2; shift 2 ;;
        -*) die "unknown option: $1" 2 ;;
        *) [ -z "$given" ] || die "one FILE only" 2; given=$1; shift ;;
    esac
done
[ -n "$given" ] || die "usage: restore_db.sh [--check|--precheck|--verify] [--no-checksum] [--allow-foreign] [--drop-old] FILE" 2

require DB_BACKUPS_DIR
pg_env
live=$POSTGRES_DB
stamp=$(date -u +%Y%m%d%H%M%S)
prefix=${live:0:36}
old="${prefix}_pre_restore_$stamp"

# psql on the maintenance database; SQL on stdin, names passed as psql variables.
psql_admin() {
    psql -X -q -v ON_ERROR_STOP=1 --no-password -d postgres "$@"
}

drop_database() {
    psql_admin -v name="$1" <<'SQL'
DROP DATABASE IF EXISTS :"name" WITH (FORCE);
SQL
}

if [ "$mode" = drop ]; then
    is_previous_db "$given" || die "refusing to drop $given: only ${prefix}_pre_restore_<timestamp> databases" 2
    drop_database "$given"
    log "dropped $given"
    emit_json "dropped=$given"
    exit 0
fi

started=$(now_ms)
# lap NAME: LAP is set to the seconds since the previous lap (or the start), and kept as the
# step NAME's time in STEPS (the JSON line's "steps")
lap_ms=$started
LAP=0
STEPS=""
lap() {
    local now
    now=$(now_ms)
    LAP=$(seconds_since "$lap_ms")
    lap_ms=$now
    STEPS="${STEPS:+$STEPS,}\"$1\":$LAP"
}
scratch=""
loader=""
sha_pid=""
cleanup() {
    [ -z "$sha_pid" ] || kill "$sha_pid" 2>/dev/null || true
    if [ -n "$scratch" ]; then
        log "dropping the scratch database $scratch"
        drop_database "$scratch" || log "warning: could not drop $scratch; drop it by hand"
    fi
    if [ -n "$loader" ]; then
        psql_admin -v name="$loader" <<'SQL' || log "warning: could not drop the role $loader; drop it by hand"
DROP ROLE IF EXISTS :"name";
SQL
    fi
    [ -z "$WORK" ] || rm -rf -- "$WORK"
}
on_exit cleanup

# detect_format PATH: custom, tar, directory, gzip or sql (a text file); dies on anything else.
detect_format() {
    local magic
    if [ -d "$1" ]; then
        [ -f "$1/toc.dat" ] || die "$(basename -- "$file") is a folder without toc.dat: not a directory-format pg_dump" 65
        echo directory
        return
    fi
    magic=$(head -c 5 -- "$1" | od -An -tx1 | tr -d ' \n')
    case "$magic" in
        5047444d50) echo custom ;;  # PGDMP
        1f8b*) echo gzip ;;
        *)
            if [ "$(dd if="$1" bs=1 skip=257 count=5 status=none | tr -d '\000')" = ustar ]; then
                echo tar
            elif [ "$(head -c 65536 -- "$1" | tr -cd '\000' | wc -c)" = 0 ]; then
                echo sql  # text: no NUL byte in its first 64 KiB
            else
                die "$(basename -- "$file") is neither a pg_dump archive (custom, tar, directory) nor plain SQL" 65
            fi
            ;;
    esac
}

# -- 1. integrity ---------------------------------------------------------------------------
file=$(resolve_backup "$given" "$DB_BACKUPS_DIR")
make_workdir
if [ "$mode" != check ] && [ -f "$file" ] && [ -f "$file.sha256" ]; then
    # Hashed while the archive loads into the scratch database: nothing reaches the live
    # database before await_checksum has passed.
    check_sidecar "$file" 0 >/dev/null &
    sha_pid=$!
    checksum=ok
else
    checksum=$(check_sidecar "$file" "$skip_checksum")
fi
# await_checksum: the background sha256 matched its sidecar, or exit (its log says why)
await_checksum() {
    local rc=0
    [ -n "$sha_pid" ] || return 0
    wait "$sha_pid" || rc=$?
    sha_pid=""
    [ "$rc" = 0 ] || exit "$rc"
}
if [ -f "$file" ]; then
    case "$file" in *.age) need_room "$WORK" "$(stat -c %s -- "$file")" "the decrypted copy of $(basename -- "$file")" ;; esac
fi
# a damaged file fails here or at the listing: a checksum mismatch is the clearer reason
archive=$(maybe_decrypt "$file" "$WORK") || { rc=$?; await_checksum; exit "$rc"; }
format=$(detect_format "$archive") || { rc=$?; await_checksum; exit "$rc"; }
if [ "$format" = gzip ]; then
    plain="$WORK/unzipped"
    gzip -dc -- "$archive" >"$plain" || { await_checksum; die "$(basename -- "$file") could not be unzipped: the file is damaged, or the disk is full" 65; }
    archive=$plain
    format=$(detect_format "$archive") || { rc=$?; await_checksum; exit "$rc"; }
    [ "$format" != gzip ] || die "$(basename -- "$file") is gzipped twice" 65
fi
readable=""
read_through=false
entries=0
if [ "$format" = sql ]; then
    # Plain SQL has no table of contents to list: psql reads it into the scratch database.
    readable=", plain SQL"
else
    entries=$(pg_restore --list -- "$archive" | awk '!/^;/ && NF { n++ } END { print n + 0 }') ||
        { await_checksum; die "$(basename -- "$file") is not a readable pg_dump archive" 65; }
    # Read the whole archive up front when nothing else vouches for it. A matching sha256 sidecar
    # says these are the bytes pg_dump wrote (a backup is renamed into place only once pg_dump has
    # succeeded), and the restore reads everything anyway, into a scratch database the live one
    # never depends on; --check always reads it all.
    if { [ "$mode" = check ] && [ "$read_all" = 1 ]; } || [ "$checksum" != ok ]; then
        pg_restore -f /dev/null -- "$archive" || die "$(basename -- "$file") could not be read to the end: the archive is damaged" 65
        readable=", readable"
        read_through=true
    fi
fi
lap integrity
shown=$checksum
[ -z "$sha_pid" ] || shown="being checked alongside the load"
log "$(basename -- "$file"): checksum $shown, $format format, $entries archive entries$readable ($LAP s)"
if [ "$mode" = check ]; then
    emit_json "file=$(basename -- "$file")" "checksum=$checksum" "format=$format" "entries:=$entries" \
        "read_through:=$read_through" "bytes:=$(du -sb -- "$archive" | cut -f1)" "seconds:=$(seconds_since "$started")"
    exit 0
fi

# -- 2. restore into a scratch database ------------------------------------------------------
if [ "$mode" = verify ]; then
    scratch_name="${prefix}_verify_$stamp"
else
    take_lock db
    scratch_name="${prefix}_restore_$stamp"
fi

# load_sql: plain SQL into the scratch database, as a throwaway login role that owns only the
# scratch database (the SQL may do anything its role may: not a superuser's), in psql's
# restricted mode (\restrict with a random key: no \! or \connect). pg_dump's own
# \restrict/\unrestrict lines and its OWNER TO lines (for roles this server may not have)
# are left out; afterwards everything is handed to POSTGRES_USER, as pg_restore --no-owner does.
load_sql() {
    local password key
    password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    key=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    loader="${prefix}_loader_$stamp"
    # the password reaches psql on stdin (never argv)
    { printf '\\set password %s\n' "$password"; cat <<'SQL'; } | psql_admin -v name="$loader" -v scratch="$scratch" || return 1
CREATE ROLE :"name" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'password';
ALTER DATABASE :"scratch" OWNER TO :"name";
SQL
    {
        printf '\\restrict %s\n' "$key"
        sed -E '/^\\(un)?restrict [A-Za-z0-9]+$/d; /^ALTER [A-Z ]+ .+ OWNER TO [^;]+;$/d' -- "$archive"
    } | PGUSER=$loader PGPASSWORD=$password psql -X -q -v ON_ERROR_STOP=1 --no-password --single-transaction \
        -d "$scratch" -f - >/dev/null || return 1
    psql -X -q -v ON_ERROR_STOP=1 --no-password -d "$scratch" -v name="$loader" -v owner="$POSTGRES_USER" <<'SQL' || return 1
REASSIGN OWNED BY :"name" TO :"owner";
DROP OWNED BY :"name";
SQL
    psql_admin -v name="$loader" <<'SQL' || return 1
DROP ROLE :"name";
SQL
    loader=""
}

scratch=$scratch_name
psql_admin -v name="$scratch" <<'SQL'
CREATE DATABASE :"name" TEMPLATE template0;
SQL
log "restoring into the scratch database $scratch ($format format)"
if [ "$format" = sql ]; then
    load_sql || { await_checksum; die "psql could not load $(basename -- "$file") (see above); $live was not touched" 1; }
else
    # Two jobs (data and indexes of two tables at once; bench/ compares job counts), more memory
    # for index builds, and no wait for WAL flushes: a crash only loses the scratch database.
    jobs=2
    [ "$format" != tar ] || jobs=1  # a tar archive restores with one job only
    PGOPTIONS="${PGOPTIONS:-} -c maintenance_work_mem=128MB -c synchronous_commit=off" \
        pg_restore --no-password --exit-on-error --no-owner --role="$POSTGRES_USER" -j "$jobs" -d "$scratch" -- "$archive" ||
        { await_checksum; die "pg_restore failed; $live was not touched" 1; }
fi
lap load
log "loaded $scratch ($LAP s)"
counts=$(psql -X -q -At -F ' ' -v ON_ERROR_STOP=1 --no-password -d "$scratch" <<'SQL'
SELECT count(*),
       coalesce(sum((xpath('/row/c/text()', query_to_xml(
           format('SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, true, '')))[1]::text::bigint), 0)
FROM pg_tables
WHERE schemaname NOT IN ('pg_catalog', 'information_schema');
SQL
)
read -r tables rows <<<"$counts"
lap count
log "$scratch holds $tables tables and $rows rows ($LAP s)"
await_checksum
lap checksum

# -- 3. this app's database? -------------------------------------------------------------------
# migrations DB: its applied migrations, one "app name" line each, sorted; exit 3 without the table
migrations() {
    local present
    present=$(psql -X -q -At -v ON_ERROR_STOP=1 --no-password -d "$1" -c \
        "SELECT to_regclass('public.django_migrations') IS NOT NULL")
    [ "$present" = t ] || return 3
    psql -X -q -At -F ' ' -v ON_ERROR_STOP=1 --no-password -d "$1" -c \
        "SELECT app, name FROM public.django_migrations ORDER BY 1, 2" | LC_ALL=C sort -u
}
# Django's own apps: every project shares their migrations, so they say nothing about whose it is.
DJANGO_APPS=" admin auth contenttypes sessions sites flatpages redirects "
own_apps() {
    awk -v skip="$DJANGO_APPS" 'index(skip, " " $1 " ") == 0 { print $1 }' | LC_ALL=C sort -u
}
# foreign_reason: empty when the scratch database is this app's, else why it is not.
foreign_reason() {
    local ours theirs rc=0 common
    theirs=$(migrations "$scratch") || rc=$?
    [ "$rc" != 3 ] || { echo "it has no django_migrations table: it is not a Django database"; return; }
    [ "$rc" = 0 ] || { echo "its django_migrations table could not be read"; return; }
    [ -n "$theirs" ] || { echo "its django_migrations table is empty"; return; }
    rc=0
    ours=$(migrations "$live") || rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "$live's django_migrations table could not be read"; return; }
    if [ -z "$ours" ]; then
        return  # the live database has no history yet: nothing to compare with
    fi
    if [ -n "$(LC_ALL=C comm -23 <(printf '%s\n' "$theirs") <(printf '%s\n' "$ours") | head -1)" ] &&
        [ -n "$(LC_ALL=C comm -13 <(printf '%s\n' "$theirs") <(printf '%s\n' "$ours") | head -1)" ]; then
        echo "its migration history does not fit $live's: each has migrations the other lacks" \
            "(e.g. $(LC_ALL=C comm -23 <(printf '%s\n' "$theirs") <(printf '%s\n' "$ours") | head -3 | tr ' \n' '.,' | sed 's/,$//'))"
        return
    fi
    common=$(LC_ALL=C comm -12 <(printf '%s\n' "$theirs" | own_apps) <(printf '%s\n' "$ours" | own_apps))
    if [ -z "$common" ] && [ -n "$(printf '%s\n' "$ours" | own_apps)" ]; then
        echo "it has none of the project's own apps' migrations ($(printf '%s\n' "$ours" | own_apps | tr '\n' ' ' | sed 's/ $//'))"
    fi
}
reason=$(foreign_reason)
app_fits=true
[ -z "$reason" ] || app_fits=false
lap app_check
if [ "$mode" = verify ]; then
    [ -z "$reason" ] || log "warning: $(basename -- "$file") does not look like this app's database: $reason"
    emit_json "file=$(basename -- "$file")" "checksum=$checksum" "format=$format" "tables:=$tables" "rows:=$rows" \
        "app_fits:=$app_fits" "seconds:=$(seconds_since "$started")" "steps:={$STEPS}"
    exit 0  # the EXIT trap drops the scratch database
fi
if [ -n "$reason" ]; then
    if [ "$allow_foreign" = 1 ]; then
        log "warning: $(basename -- "$file") does not look like this app's database ($reason); restoring it anyway (--allow-foreign)"
    else
        die "$(basename -- "$file") is not a dump of this app's database: $reason. $live was not touched; pass --allow-foreign to restore it anyway" 65
    fi
fi

# -- 4. swap, in one transaction --------------------------------------------------------------
# New connections to the live database are refused first, then the existing ones are ended;
# ALTER DATABASE RENAME is transactional, so either both renames happen or neither does.
log "swapping: $live -> $old, $scratch -> $live"
if ! psql_admin -v live="$live" -v scratch="$scratch" -v old="$old" <<'SQL'; then
ALTER DATABASE :"live" WITH ALLOW_CONNECTIONS false;
SELECT count(pg_terminate_backend(pid)) AS ended FROM pg_stat_activity
 WHERE datname IN (:'live', :'scratch') AND pid <> pg_backend_pid() \gset
BEGIN;
ALTER DATABASE :"live" RENAME TO :"old";
ALTER DATABASE :"scratch" RENAME TO :"live";
ALTER DATABASE :"old" WITH ALLOW_CONNECTIONS true;
COMMIT;
SQL
    psql_admin -v live="$live" <<'SQL' || true
ALTER DATABASE :"live" WITH ALLOW_CONNECTIONS true;
SQL
    die "the swap failed; $live is unchanged" 1
fi
scratch=""
lap swap
log "swapped ($LAP s)"

# -- 5. the old database --------------------------------------------------------------------
dropped=false
if [ "$drop_old" = 1 ]; then
    drop_database "$old"
    dropped=true
    lap drop
    log "dropped $old ($LAP s)"
else
    log "the previous database is kept as $old (restore_db.sh --drop-old-only $old drops it)"
fi
emit_json "file=$(basename -- "$file")" "checksum=$checksum" "format=$format" "database=$live" "old_database=$old" \
    "old_dropped:=$dropped" "app_fits:=$app_fits" "tables:=$tables" "rows:=$rows" "seconds:=$(seconds_since "$started")" \
    "steps:={$STEPS}"
