# shellcheck shell=bash disable=SC2034
# Shared by the backup and restore scripts (sourced, never run). No secrets in argv or logs:
# the database password reaches libpq through the PGPASSWORD environment variable only.

BACKUP_ROOT=${BACKUP_ROOT:-/backups}
DB_BACKUPS_DIR=${DB_BACKUPS_DIR:-$BACKUP_ROOT/db}
MEDIA_BACKUPS_DIR=$BACKUP_ROOT/media
INCOMING_DIR=$BACKUP_ROOT/incoming
MEDIA_ROOT=${MEDIA_ROOT:-/srv/media}
COMPRESS_LEVEL=${BACKUP_COMPRESS_LEVEL:-6}
export BACKUP_ROOT DB_BACKUPS_DIR MEDIA_ROOT

log() {
    printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${0##*/}" "$*" >&2
}

die() {
    log "error: $1"
    exit "${2:-1}"
}

utc_stamp() {
    date -u +%Y%m%dT%H%M%SZ
}

# is_previous_db NAME: NAME is a <db>_pre_restore_<YYYYmmddHHMMSS> database, which
# restore_db.sh leaves after a swap: the only kind the scripts drop, or dump under POSTGRES_DB's name.
is_previous_db() {
    case "$1" in
        "${POSTGRES_DB:0:36}_pre_restore_"[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]) return 0 ;;
        *) return 1 ;;
    esac
}

# free_name DIR PREFIX SUFFIX: PREFIX<utc stamp>SUFFIX, a name not yet taken in DIR. Names carry
# the second; a backup in the same second as the last one waits for the next (callers hold the
# backup lock, so no other backup takes the name meanwhile).
free_name() {
    local tries=0 name
    while name="$2$(utc_stamp)$3" && [ -e "$1/$name" ]; do
        tries=$((tries + 1))
        [ "$tries" -le 3 ] || die "$name already exists; try again in a second" 75
        sleep 1
    done
    printf '%s\n' "$name"
}

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# Seconds since a now_ms value, with three decimals.
seconds_since() {
    local ms
    ms=$(($(now_ms) - $1))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

# libpq settings from the stack's POSTGRES_* variables.
pg_env() {
    : "${POSTGRES_USER:?POSTGRES_USER is not set}"
    : "${POSTGRES_DB:?POSTGRES_DB is not set}"
    if [ -z "${PGPASSWORD:-}" ]; then
        : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}"
        export PGPASSWORD=$POSTGRES_PASSWORD
    fi
    export PGHOST=${POSTGRES_HOST:-db} PGPORT=${POSTGRES_PORT:-5432} PGUSER=$POSTGRES_USER
    export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10} PGAPPNAME=stackctl-backup
    unset PGDATABASE
}

# The age recipients (comma-separated BACKUP_AGE_RECIPIENTS) as `-r KEY` arguments.
# (No length expansions of the dollar-brace-hash form in these files: stackctl renders them
# with Jinja, where brace-hash opens a comment.)
AGE_ARGS=()
ENCRYPT=0
age_recipients() {
    local key keys
    AGE_ARGS=()
    ENCRYPT=0
    IFS=',' read -r -a keys <<<"${BACKUP_AGE_RECIPIENTS:-}"
    for key in "${keys[@]}"; do
        key=$(printf '%s' "$key" | tr -d '[:space:]')
        if [ -n "$key" ]; then
            AGE_ARGS+=(-r "$key")
            ENCRYPT=1
        fi
    done
}

# stdin to stdout, encrypted when recipients are configured.
maybe_encrypt() {
    if [ "$ENCRYPT" = 1 ]; then
        age "${AGE_ARGS[@]}"
    else
        cat
    fi
}

sha256_of() {
    sha256sum -- "$1" | cut -d' ' -f1
}

# Move a finished temp file to its final name: fsync, refuse to overwrite (hard link),
# then write NAME.sha256 the same way (temp + fsync + rename) and fsync the folder.
seal() {
    local tmp=$1 final=$2 dir sum side
    dir=$(dirname -- "$final")
    sync -- "$tmp"
    sum=$(sha256_of "$tmp")
    side=$(mktemp "$dir/.tmp-sha256-XXXXXX")
    printf '%s  %s\n' "$sum" "$(basename -- "$final")" >"$side"
    sync -- "$side"
    ln -- "$tmp" "$final" || die "$(basename -- "$final") already exists"
    rm -f -- "$tmp"
    mv -f -- "$side" "$final.sha256"
    chmod 0640 -- "$final" "$final.sha256"
    sync -- "$dir"
    SEALED_SHA256=$sum
}

mark_success() {
    local kind=$1 file=$2 tmp
    tmp=$(mktemp "$BACKUP_ROOT/.tmp-marker-XXXXXX")
    printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(basename -- "$file")" >"$tmp"
    chmod 0644 -- "$tmp"
    mv -f -- "$tmp" "$BACKUP_ROOT/last-success-$kind"
}

# Serialise jobs of one kind (a scheduled dump waits for a restore, and the reverse).
take_lock() {
    exec 9>"$BACKUP_ROOT/.lock-$1"
    flock -w "${BACKUP_LOCK_WAIT:-3600}" 9 || die "another $1 backup or restore is still running" 75
}

# A backup given by name (looked up in its folder, then in incoming/) or by path.
resolve_backup() {
    local given=$1 dir=$2
    if [ -f "$given" ]; then
        printf '%s\n' "$given"
    elif [ "${given#*/}" = "$given" ] && [ -f "$dir/$given" ]; then
        printf '%s\n' "$dir/$given"
    elif [ "${given#*/}" = "$given" ] && [ -f "$INCOMING_DIR/$given" ]; then
        printf '%s\n' "$INCOMING_DIR/$given"
    else
        die "no such backup: $given (looked in $dir and $INCOMING_DIR)" 66
    fi
}

# Compare FILE with FILE.sha256. Prints ok or skipped; dies on a mismatch or a missing sidecar.
check_sidecar() {
    local file=$1 skip=$2 expected actual
    if [ ! -f "$file.sha256" ]; then
        [ "$skip" = 1 ] || die "$(basename -- "$file") has no .sha256 sidecar; refusing (pass --no-checksum to accept it)" 65
        echo skipped
        return 0
    fi
    expected=$(awk 'NR == 1 { print tolower($1) }' "$file.sha256")
    actual=$(sha256_of "$file")
    [ "$expected" = "$actual" ] || die "$(basename -- "$file") does not match its sha256 sidecar: the file is damaged" 65
    echo ok
}

# Decrypt FILE into WORKDIR when it ends in .age; print the path to read.
maybe_decrypt() {
    local file=$1 work=$2 plain
    case "$file" in
        *.age)
            [ -n "${BACKUP_AGE_IDENTITY:-}" ] || die "$(basename -- "$file") is encrypted: set BACKUP_AGE_IDENTITY to the path of an age identity file" 65
            [ -r "$BACKUP_AGE_IDENTITY" ] || die "BACKUP_AGE_IDENTITY ($BACKUP_AGE_IDENTITY) is not a readable file" 65
            plain="$work/$(basename -- "${file%.age}")"
            age -d -i "$BACKUP_AGE_IDENTITY" -o "$plain" -- "$file" || die "could not decrypt $(basename -- "$file") with BACKUP_AGE_IDENTITY" 65
            printf '%s\n' "$plain"
            ;;
        *) printf '%s\n' "$file" ;;
    esac
}

emit_json() {
    backupctl.py emit "$@"
}
