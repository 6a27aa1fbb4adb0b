#!/usr/bin/env bash
# restore_db.sh [--no-checksum] [--drop-old] FILE   restore FILE into POSTGRES_DB
# restore_db.sh [--no-checksum] --check FILE        integrity checks only
# restore_db.sh [--no-checksum] --verify FILE       restore into a scratch db, count, drop it
# restore_db.sh --drop-old-only NAME                drop a <db>_pre_restore_<ts> database
#
# FILE is a path or a backup name (looked up in DB_BACKUPS_DIR, then /backups/incoming).
# 1. Integrity, before the live database is touched: the NAME.sha256 sidecar must match (a
#    missing one is refused unless --no-checksum; the hash is computed while step 2 loads
#    and checked before step 3), .age files are decrypted with the identity file
#    BACKUP_AGE_IDENTITY, and pg_restore must list the archive (and read all of it with
#    --check, or when no matching checksum vouches for it).
# 2. Restore into a new scratch database <db>_restore_<ts>; on failure it is dropped and
#    the live database was never touched.
# 3. Swap in one transaction: <db> becomes <db>_pre_restore_<ts>, the scratch becomes <db>.
# 4. With --drop-old the previous database is dropped, else its name is printed.
# Prints one JSON line: {"file", "tables", "rows", "seconds", "old_database", ...}.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=backup_common.sh
. "$(dirname -- "$(readlink -f -- "$0")")/backup_common.sh"

mode=restore
skip_checksum=0
drop_old=0
given=""
while [ $# -gt 0 ]; do
    case "$1" in
        --check) mode=check; shift ;;
        --verify) mode=verify; shift ;;
        --no-checksum) skip_checksum=1; shift ;;
        --drop-old) drop_old=1; shift ;;
        --drop-old-only) mode=drop; given=${2:?--drop-old-only needs a database name}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        --) given=${2:?FILE is missing}; shift 2 ;;
        -*) die "unknown option: $1" 2 ;;
        *) [ -z "$given" ] || die "one FILE only" 2; given=$1; shift ;;
    esac
done
[ -n "$given" ] || die "usage: restore_db.sh [--check|--verify] [--no-checksum] [--drop-old] FILE" 2

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
# lap: LAP is set to the seconds since the previous lap (or the start), for the step timings
lap_ms=$started
LAP=0
lap() {
    local now
    now=$(now_ms)
    LAP=$(seconds_since "$lap_ms")
    lap_ms=$now
}
work=""
scratch=""
sha_pid=""
cleanup() {
    [ -z "$sha_pid" ] || kill "$sha_pid" 2>/dev/null || true
    if [ -n "$scratch" ]; then
        log "dropping the scratch database $scratch"
        drop_database "$scratch" || log "warning: could not drop $scratch; drop it by hand"
    fi
    [ -z "$work" ] || rm -rf -- "$work"
}
on_exit cleanup

# -- 1. integrity ---------------------------------------------------------------------------
file=$(resolve_backup "$given" "$DB_BACKUPS_DIR")
work=$(mktemp -d "$BACKUP_ROOT/.tmp-restore-XXXXXX")
if [ "$mode" != check ] && [ -f "$file.sha256" ]; then
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
# a damaged file fails here or at the listing: a checksum mismatch is the clearer reason
archive=$(maybe_decrypt "$file" "$work") || { rc=$?; await_checksum; exit "$rc"; }
entries=$(pg_restore --list -- "$archive" | awk '!/^;/ && NF { n++ } END { print n + 0 }') ||
    { await_checksum; die "$(basename -- "$file") is not a readable pg_dump archive" 65; }
# Read the whole archive up front when nothing else vouches for it. A matching sha256 sidecar
# says these are the bytes pg_dump wrote (a backup is renamed into place only once pg_dump has
# succeeded), and the restore reads everything anyway, into a scratch database the live one
# never depends on; --check always reads it all.
readable=""
if [ "$mode" = check ] || [ "$checksum" != ok ]; then
    pg_restore -f /dev/null -- "$archive" || die "$(basename -- "$file") could not be read to the end: the archive is damaged" 65
    readable=", readable"
fi
lap
shown=$checksum
[ -z "$sha_pid" ] || shown="being checked alongside the load"
log "$(basename -- "$file"): checksum $shown, $entries archive entries$readable ($LAP s)"
if [ "$mode" = check ]; then
    emit_json "file=$(basename -- "$file")" "checksum=$checksum" "entries:=$entries" \
        "seconds:=$(seconds_since "$started")"
    exit 0
fi

# -- 2. restore into a scratch database ------------------------------------------------------
if [ "$mode" = verify ]; then
    scratch_name="${prefix}_verify_$stamp"
else
    take_lock db
    scratch_name="${prefix}_restore_$stamp"
fi
scratch=$scratch_name
psql_admin -v name="$scratch" <<'SQL'
CREATE DATABASE :"name" TEMPLATE template0;
SQL
log "restoring into the scratch database $scratch"
# Two jobs (data and indexes of two tables at once; bench/ compares job counts), more memory
# for index builds, and no wait for WAL flushes: a crash only loses the scratch database.
PGOPTIONS="${PGOPTIONS:-} -c maintenance_work_mem=128MB -c synchronous_commit=off" \
    pg_restore --no-password --exit-on-error --no-owner --role="$POSTGRES_USER" -j 2 -d "$scratch" -- "$archive" ||
    { await_checksum; die "pg_restore failed; $live was not touched" 1; }
lap
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
lap
log "$scratch holds $tables tables and $rows rows ($LAP s)"
await_checksum
if [ "$mode" = verify ]; then
    emit_json "file=$(basename -- "$file")" "checksum=$checksum" "tables:=$tables" "rows:=$rows" \
        "seconds:=$(seconds_since "$started")"
    exit 0  # the EXIT trap drops the scratch database
fi

# -- 3. swap, in one transaction --------------------------------------------------------------
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
lap
log "swapped ($LAP s)"

# -- 4. the old database --------------------------------------------------------------------
dropped=false
if [ "$drop_old" = 1 ]; then
    drop_database "$old"
    dropped=true
    lap
    log "dropped $old ($LAP s)"
else
    log "the previous database is kept as $old (restore_db.sh --drop-old-only $old drops it)"
fi
emit_json "file=$(basename -- "$file")" "checksum=$checksum" "database=$live" "old_database=$old" \
    "old_dropped:=$dropped" "tables:=$tables" "rows:=$rows" "seconds:=$(seconds_since "$started")"
