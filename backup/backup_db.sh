#!/usr/bin/env bash
# backup_db.sh [--label LABEL] [--from-previous <db>_pre_restore_<ts>] [--no-copy] [--no-prune]
#
# Dump POSTGRES_DB (custom format, -Z BACKUP_COMPRESS_LEVEL), or with --from-previous the
# database a restore left aside (named as a backup of POSTGRES_DB, restorable as one; zstd at
# level 1 where pg_dump has it, see below), to
# DB_BACKUPS_DIR/<db>-<UTC YYYYmmddTHHMMSSZ>[-LABEL].dump (.dump.age when
# BACKUP_AGE_RECIPIENTS is set), atomically, with a NAME.sha256 sidecar. A failed dump
# leaves no file. On success: touch /backups/last-success-db, copy the dump and its sidecar to
# DB_BACKUP_TARGET when it is not empty (unless --no-copy; the same kinds of target as
# MEDIA_BACKUP_TARGET, which it defaults to), apply the retention policy (unless --no-prune:
# it re-hashes every db backup, which a restore's safety dump leaves to the next scheduled
# backup), and print one JSON line: {"file", "bytes", "seconds", "sha256", "copied_to", ...}.
# A failed copy exits 3 and keeps the local dump.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=backup_common.sh
. "$(dirname -- "$(readlink -f -- "$0")")/backup_common.sh"

label=""
source_db=""
copy=1
prune=1
while [ $# -gt 0 ]; do
    case "$1" in
        --label) label=${2:?--label needs a value}; shift 2 ;;
        --from-previous) source_db=${2:?--from-previous needs a database name}; shift 2 ;;
        --label=*) label=${1#--label=}; shift ;;
        --no-copy) copy=0; shift ;;
        --no-prune) prune=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument: $1" 2 ;;
    esac
done
check_label "$label"

require DB_BACKUPS_DIR BACKUP_COMPRESS_LEVEL
require_set DB_BACKUP_TARGET MEDIA_BACKUP_TARGET
pg_env
if [ -z "$source_db" ]; then
    source_db=$POSTGRES_DB
elif ! is_previous_db "$source_db"; then
    die "--from-previous takes a ${POSTGRES_DB:0:36}_pre_restore_<timestamp> database, not $source_db" 2
fi
age_recipients
mkdir -p -- "$DB_BACKUPS_DIR"
take_lock db

on_exit remove_partial

# A restore waits for its safety dump of the previous database: where pg_dump can (PostgreSQL
# 16+, built with zstd as Debian's and the official images are), it is compressed with zstd
# at level 1, 2.5 times as fast as gzip's level 1 and smaller (the bench's 1067 MB: 3.6-3.7 s
# and 288 MB against 9.1-9.2 s and 351 MB; lz4 3.7-4.0 s and 571 MB). pg_restore 16+ reads
# it. A level of 0 (no compression) stays as it is.
compress=$BACKUP_COMPRESS_LEVEL
if [ "$source_db" != "$POSTGRES_DB" ] && [ "$compress" != 0 ] &&
    [ "$(pg_dump --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')" -ge 16 ]; then
    compress=zstd:1
fi

started=$(now_ms)
suffix="${label:+-$label}.dump"
[ "$ENCRYPT" = 0 ] || suffix="$suffix.age"
name=$(free_name "$DB_BACKUPS_DIR" "$POSTGRES_DB-" "$suffix")
PARTIAL=$(mktemp "$DB_BACKUPS_DIR/.tmp-db-XXXXXX")

log "dumping $source_db from $PGHOST:$PGPORT to $name (compression $compress)"
if [ "$ENCRYPT" = 1 ]; then
    pg_dump --no-password -Fc -Z "$compress" -d "$source_db" | maybe_encrypt >"$PARTIAL"
else
    # Straight to the file, so the archive records data offsets (parallel restore needs them).
    pg_dump --no-password -Fc -Z "$compress" -d "$source_db" -f "$PARTIAL"
fi

seal "$PARTIAL" "$DB_BACKUPS_DIR/$name"
PARTIAL=""
# a dump of the previous database does not vouch for the live one: no success mark
[ "$source_db" != "$POSTGRES_DB" ] || mark_success db "$name"
bytes=$(stat -c %s -- "$DB_BACKUPS_DIR/$name")
seconds=$(seconds_since "$started")
log "wrote $name ($bytes bytes in ${seconds}s)"

target=${DB_BACKUP_TARGET:-$MEDIA_BACKUP_TARGET}
status=0
copied=null
if [ "$copy" = 1 ] && [ -n "$target" ]; then
    log "copying $name to $target"
    if copy_to_target "$DB_BACKUPS_DIR/$name" "$target" >&2; then
        copied=true
    else
        copied=false
        status=3
        log "error: the copy to $target failed; the local dump is kept"
    fi
fi

if [ "$prune" = 1 ] && ! backupctl.py prune --kind db >&2; then
    log "warning: the retention policy could not be applied; the new backup is kept"
fi
copied_to=(copied_to:=null)
[ -z "$target" ] || copied_to=("copied_to=$target")
emit_json kind=db "file=$name" "path=$DB_BACKUPS_DIR/$name" "bytes:=$bytes" "seconds:=$seconds" \
    "sha256=$SEALED_SHA256" "compression=$compress" "encrypted:=$([ "$ENCRYPT" = 1 ] && echo true || echo false)" \
    "${copied_to[@]}" "copied:=$copied"
exit "$status"
