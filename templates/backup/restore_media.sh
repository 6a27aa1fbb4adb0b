#!/usr/bin/env bash
# restore_media.sh [--no-checksum] FILE           replace MEDIA_ROOT's content with FILE's
# restore_media.sh [--no-checksum] --check FILE   integrity checks only
#
# FILE is a path or an archive name (looked up in /backups/media, then /backups/incoming).
# 1. Integrity first: the NAME.sha256 sidecar must match (a missing one is refused unless
#    --no-checksum), .age files are decrypted with BACKUP_AGE_IDENTITY, tar must read it
#    all, and every member must be a plain file or folder inside MEDIA_ROOT: symbolic and
#    hard links, devices, fifos, absolute names and `..` are refused (nginx would serve a
#    link's target).
# 2. Extract into MEDIA_ROOT/.restore-tmp (the same volume, when it has room), then swap:
#    the current content moves to MEDIA_ROOT/.restore-old, and only once all of it is
#    there does the new content move in; then the old is deleted. Any failure before the
#    end moves everything back where it was: nothing of the live content is ever deleted
#    until the new content is wholly in place.
# Prints one JSON line: {"file", "files", "seconds", ...}.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=backup_common.sh
. "$(dirname -- "$(readlink -f -- "$0")")/backup_common.sh"

mode=restore
skip_checksum=0
given=""
while [ $# -gt 0 ]; do
    case "$1" in
        --check) mode=check; shift ;;
        --no-checksum) skip_checksum=1; shift ;;
        -h | --help) usage; exit 0 ;;
        --) [ $# = 2 ] || die "one FILE after --" 2; given=$2; shift 2 ;;
        -*) die "unknown option: $1" 2 ;;
        *) [ -z "$given" ] || die "one FILE only" 2; given=$1; shift ;;
    esac
done
[ -n "$given" ] || die "usage: restore_media.sh [--check] [--no-checksum] FILE" 2
require MEDIA_ROOT
[ -d "$MEDIA_ROOT" ] || die "MEDIA_ROOT ($MEDIA_ROOT) is not a folder" 66

staging="$MEDIA_ROOT/.restore-tmp"
aside="$MEDIA_ROOT/.restore-old"
started=$(now_ms)
swapping=0
made_staging=0
moved_in=()

# Every entry of a folder except the two restore folders, NUL-separated.
entries() {
    find "$1" -mindepth 1 -maxdepth 1 ! -name .restore-tmp ! -name .restore-old -print0
}

# Put the old content back, deleting nothing: what was moved in goes back to the staging
# folder, then every entry set aside moves home (never over an entry of the same name).
# Fails, leaving the rest in $aside, when an entry cannot be moved back.
roll_back() {
    local name path rc=0
    log "restore failed; putting the previous media back"
    for name in "${moved_in[@]}"; do
        mv -- "$MEDIA_ROOT/$name" "$staging/" || rc=1
    done
    [ "$rc" = 0 ] || return 1
    while IFS= read -r -d '' path; do
        if [ -e "$MEDIA_ROOT/${path##*/}" ] || [ -L "$MEDIA_ROOT/${path##*/}" ]; then
            rc=1  # not moved aside in the first place? never replace it
            continue
        fi
        mv -- "$path" "$MEDIA_ROOT/" || rc=1
    done < <(find "$aside" -mindepth 1 -maxdepth 1 -print0)
    return "$rc"
}

# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    local rc=$?
    if [ "$swapping" = 1 ] && [ "$rc" != 0 ]; then
        roll_back || log "error: the roll back did not finish: what is missing from MEDIA_ROOT is in $aside"
    fi
    [ "$made_staging" = 0 ] || rm -rf -- "$staging"
    if [ -d "$aside" ] && [ -z "$(find "$aside" -mindepth 1 -maxdepth 1 -print -quit)" ]; then
        rmdir -- "$aside"
    fi
    [ -z "$WORK" ] || rm -rf -- "$WORK"
}
on_exit cleanup

# -- 1. integrity ---------------------------------------------------------------------------
file=$(resolve_backup "$given" "$MEDIA_BACKUPS_DIR")
[ -f "$file" ] || die "$(basename -- "$file") is not a file" 65
checksum=$(check_sidecar "$file" "$skip_checksum")
make_workdir
case "$file" in *.age) need_room "$WORK" "$(stat -c %s -- "$file")" "the decrypted copy of $(basename -- "$file")" ;; esac
archive=$(maybe_decrypt "$file" "$WORK")
tar -tzf "$archive" >/dev/null || die "$(basename -- "$file") is not a readable tar.gz archive" 65
# plain files and folders only, none outside MEDIA_ROOT; prints {"files", "bytes"}
content=$(backupctl.py check-archive -- "$archive") || die "$(basename -- "$file") was refused (see above); nothing was changed" 65
files=$(printf '%s\n' "$content" | sed -n 's/.*"files": \([0-9]*\).*/\1/p')
bytes=$(printf '%s\n' "$content" | sed -n 's/.*"bytes": \([0-9]*\).*/\1/p')
log "$(basename -- "$file"): checksum $checksum, $files files ($bytes bytes), readable"
if [ "$mode" = check ]; then
    emit_json "file=$(basename -- "$file")" "checksum=$checksum" "files:=$files" "bytes:=$bytes" \
        "seconds:=$(seconds_since "$started")"
    exit 0
fi

# -- 2. extract beside the live content, then swap ---------------------------------------------
take_lock media
[ ! -e "$aside" ] || die "$aside exists: a previous restore did not finish; move its content back into $MEDIA_ROOT, then delete it" 75
need_room "$MEDIA_ROOT" "$bytes" "the extracted archive"
rm -rf -- "$staging"
mkdir -m 0755 -- "$staging"
made_staging=1
log "extracting into $staging"
tar -xzf "$archive" -C "$staging" --no-same-owner --no-same-permissions --delay-directory-restore
mkdir -m 0755 -- "$aside"
swapping=1
while IFS= read -r -d '' path; do
    mv -- "$path" "$aside/" || die "could not move ${path#"$MEDIA_ROOT"/} aside; the media is left as it was" 1
done < <(entries "$MEDIA_ROOT")
[ -z "$(entries "$MEDIA_ROOT" | head -c 1)" ] || die "MEDIA_ROOT changed while it was moved aside; the media is left as it was" 1
while IFS= read -r -d '' path; do
    mv -- "$path" "$MEDIA_ROOT/" || die "could not move ${path#"$staging"/} in; the media is left as it was" 1
    moved_in+=("${path##*/}")
done < <(find "$staging" -mindepth 1 -maxdepth 1 -print0)
swapping=0
rm -rf -- "$aside"
sync -- "$MEDIA_ROOT"
log "media restored from $(basename -- "$file")"
emit_json "file=$(basename -- "$file")" "checksum=$checksum" "files:=$files" "seconds:=$(seconds_since "$started")"
