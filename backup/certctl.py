#!/usr/bin/env python3
"""certctl: the stack's ACME certificate (TLS_CERT_SOURCE=acme), issued and renewed by certbot.

Runs in the backup container as stackbackup (python 3.11 stdlib, certbot and openssl from
Debian). stackctl runs `bootstrap` before nginx first starts and `renew` after `up`; the
backup scheduler runs `renew --scheduled` on ACME_RENEW_CRON; backupctl's healthcheck reads
`health()`.

- certbot keeps its account key and the lineage `stackctl` in /acme (the `acme` volume) and
  answers http-01 through /acme-webroot, which nginx serves at /.well-known/acme-challenge/.
  Nothing here speaks ACME itself.
- nginx reads /etc/nginx/certs/current/{fullchain,privkey}.pem at each handshake (the
  `nginx_certs` volume, here /nginx-certs). A certificate is installed into a new folder and
  `current` is switched to it with one rename: the next handshake gets it, with no reload.
- Until the CA has issued one, `current` holds a temporary self-signed certificate.
- A renewal is asked of the CA only when needed: no certificate from it yet, other domains,
  another directory, within ACME_RENEW_DAYS of expiry, or --force. A re-run issues nothing.
- A failure leaves `current` as it was: the stack keeps serving what it had. The reason, a
  hint and certbot's own words go to /acme/state.json, `status` and the exit code (1).
- The backup service is unhealthy when the certificate nginx serves expires within 7 days,
  or within ACME_RENEW_DAYS while renewing it fails.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

UTC = dt.UTC
ACME = Path(os.environ.get("ACME_ROOT", "/acme"))
WEBROOT = Path(os.environ.get("ACME_WEBROOT", "/acme-webroot"))
CERTS = Path(os.environ.get("ACME_CERTS", "/nginx-certs"))
LINEAGE = "stackctl"
NGINX_GID = 101  # nginx's workers (`user nginx;`): they read the key at each handshake
TEMPORARY_MARK = ".temporary"
CERTBOT_TIMEOUT = 300
URGENT_DAYS = 7  # unhealthy below this many days left, whatever the reason
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


def log(text: str) -> None:
    print(f"certctl: {text}", file=sys.stderr, flush=True)


def now_utc() -> dt.datetime:
    return dt.datetime.now(UTC)


def iso(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


class Settings:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        self.domains = env.get("ACME_DOMAINS", "").split()
        self.directory = env.get("ACME_DIRECTORY_URL", "")
        self.email = env.get("ACME_EMAIL", "")
        self.ca_bundle = env.get("ACME_CA_BUNDLE_FILE", "")
        self.renew_days = int(env.get("ACME_RENEW_DAYS") or 30)
        self.cron = env.get("ACME_RENEW_CRON", "")

    def missing(self) -> list[str]:
        return [
            name
            for name, value in (("ACME_DOMAINS", self.domains), ("ACME_DIRECTORY_URL", self.directory))
            if not value
        ]


# -- certificates on disk ---------------------------------------------------------------------
def cert_info(path: Path) -> dict[str, Any] | None:
    """Serial, issuer, subject, names and dates of the first certificate in a PEM file."""
    if not path.is_file():
        return None
    proc = subprocess.run(
        ["openssl", "x509", "-in", str(path), "-noout", "-serial", "-issuer", "-subject", "-startdate",
         "-enddate", "-ext", "subjectAltName", "-nameopt", "RFC2253"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return None
    fields: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in ("serial", "issuer", "subject", "notBefore", "notAfter"):
            fields[key] = value.strip()
    names = re.findall(r"DNS:([^,\s]+)", proc.stdout)
    info: dict[str, Any] = {
        "serial": fields.get("serial", "").upper(),
        "issuer": fields.get("issuer", ""),
        "subject": fields.get("subject", ""),
        "domains": names,
    }
    for key, out in (("notBefore", "not_before"), ("notAfter", "not_after")):
        try:
            info[out] = iso(dt.datetime.strptime(fields[key], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC))
        except (KeyError, ValueError):
            info[out] = None
    return info


def days_left(info: dict[str, Any], now: dt.datetime) -> float | None:
    if not info.get("not_after"):
        return None
    return (dt.datetime.fromisoformat(info["not_after"]) - now).total_seconds() / 86400


def lineage_dir() -> Path:
    return ACME / "certbot" / "live" / LINEAGE


def lineage_server() -> str | None:
    try:
        text = (ACME / "certbot" / "renewal" / f"{LINEAGE}.conf").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^server\s*=\s*(\S+)", text, flags=re.M)
    return match[1] if match else None


def serving() -> dict[str, Any] | None:
    info = cert_info(CERTS / "current" / "fullchain.pem")
    if info is not None:
        info["temporary"] = (CERTS / "current" / TEMPORARY_MARK).exists()
    return info


def install(fullchain: bytes, privkey: bytes, *, temporary: bool) -> Path:
    """A new folder with the pair, then `current` switched to it in one rename. Keeps the one
    before (a handshake may be reading it) and removes older ones."""
    CERTS.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".new-", dir=CERTS))
    for name, content, mode in (("fullchain.pem", fullchain, 0o644), ("privkey.pem", privkey, 0o640)):
        target = folder / name
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        with contextlib.suppress(PermissionError):  # not in nginx's group: the key stays 0600's owner's
            os.chown(target, -1, NGINX_GID)
        os.chmod(target, mode)
    if temporary:
        (folder / TEMPORARY_MARK).write_text("self-signed until the CA issues one\n", encoding="utf-8")
    with contextlib.suppress(PermissionError):
        os.chown(folder, -1, NGINX_GID)
    os.chmod(folder, 0o750)
    final = CERTS / f"gen-{now_utc():%Y%m%dT%H%M%S%fZ}"
    folder.rename(final)
    previous = os.readlink(CERTS / "current") if (CERTS / "current").is_symlink() else None
    link = CERTS / ".current.new"
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(final.name)
    os.replace(link, CERTS / "current")
    for old in CERTS.glob("gen-*"):
        if old.name not in (final.name, previous):
            shutil.rmtree(old, ignore_errors=True)
    return final


def install_lineage() -> bool:
    """Install the lineage's certificate unless nginx already serves it. True: installed."""
    live = lineage_dir()
    current, issued = serving(), cert_info(live / "fullchain.pem")
    if issued is None:
        return False
    if current and current["serial"] == issued["serial"] and not current["temporary"]:
        return False
    install((live / "fullchain.pem").read_bytes(), (live / "privkey.pem").read_bytes(), temporary=False)
    log(f"installed certificate {issued['serial']} for {', '.join(issued['domains'])} (until {issued['not_after']})")
    return True


def self_signed(settings: Settings) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        key, cert = Path(tmp, "key.pem"), Path(tmp, "cert.pem")
        names = ",".join(f"DNS:{name}" for name in settings.domains) or "DNS:localhost"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "30", "-subj", f"/O=stackctl temporary certificate/CN={(settings.domains or ['localhost'])[0]}",
             "-addext", f"subjectAltName={names}", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        install(cert.read_bytes(), key.read_bytes(), temporary=True)
    log("installed a temporary self-signed certificate until the CA issues one")


def bootstrap(settings: Settings) -> str:
    """Make sure nginx has a certificate to serve: the lineage's, else a temporary one."""
    if serving() is not None and (CERTS / "current" / "privkey.pem").is_file():
        return "serving"
    if install_lineage():
        return "installed"
    self_signed(settings)
    return "temporary"


# -- state ------------------------------------------------------------------------------------
def state_path() -> Path:
    return ACME / "state.json"


def read_state() -> dict[str, Any]:
    try:
        value = json.loads(state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_state(state: dict[str, Any]) -> None:
    tmp = state_path().with_name(f".state-{os.getpid()}.json")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, state_path())


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """One certbot run at a time (the scheduler's and stackctl's)."""
    ACME.mkdir(parents=True, exist_ok=True)
    with open(ACME / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another certificate run holds the lock; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# -- renewing ---------------------------------------------------------------------------------
def why_renew(settings: Settings, now: dt.datetime, *, force: bool) -> str | None:
    """Why the CA must be asked for a certificate now, or None when the one it gave will do."""
    issued = cert_info(lineage_dir() / "fullchain.pem")
    if force:
        return "forced (--force)"
    if issued is None:
        return "no certificate from the CA yet"
    if sorted(issued["domains"]) != sorted(settings.domains):
        return f"the domains changed (it has {', '.join(issued['domains'])})"
    if lineage_server() not in (None, settings.directory):
        return "ACME_DIRECTORY_URL changed"
    left = days_left(issued, now)
    if left is None or left <= settings.renew_days:
        if left is None:
            return "it has no end date"
        return f"it expires in {left:.0f} days (ACME_RENEW_DAYS={settings.renew_days})"
    return None


def certbot_command(settings: Settings, *, renewing: bool) -> list[str]:
    command = [
        "certbot", "certonly", "--non-interactive", "--agree-tos", "--webroot", "--webroot-path", str(WEBROOT),
        "--preferred-challenges", "http-01", "--config-dir", str(ACME / "certbot"), "--work-dir", str(ACME / "work"),
        "--logs-dir", str(ACME / "logs"), "--max-log-backups", "10", "--server", settings.directory,
        "--cert-name", LINEAGE, "--key-type", "ecdsa",
    ]  # fmt: skip
    command += (
        ["--email", settings.email, "--no-eff-email"] if settings.email else ["--register-unsafely-without-email"]
    )
    if renewing:
        command.append("--force-renewal")  # certctl decided it is due
    for domain in settings.domains:
        command += ["-d", domain]
    return command


CA_UNREACHABLE = (
    "Failed to establish a new connection",
    "Max retries exceeded",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Connection refused",
    "Network is unreachable",
    "timed out",
    "RemoteDisconnected",
)
CHALLENGE = ("failed to authenticate", "Some challenges have failed", "Challenge failed", "Type:   ")


def classify(output: str, settings: Settings) -> dict[str, str]:
    """certbot's failure as a reason, a hint and the lines of its output that say what it was."""
    names = ", ".join(settings.domains)
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    detail = [
        line.strip()
        for line in lines
        if re.match(r"\s*(Domain|Type|Detail|Hint):", line)
        or re.search(r"Error|error:|Exception|unexpected|rateLimited|too many", line)
    ]
    if any(marker in output for marker in CHALLENGE):
        reason = "challenge-failed"
        hint = (
            f"the CA could not fetch http://<domain>/.well-known/acme-challenge/ for {names}: make the DNS of each "
            "name point at this host, and port 80 reach nginx (NGINX_BIND_ADDRESS=0.0.0.0, HTTP_PORT=80)"
        )
    elif "rateLimited" in output or "too many" in output.lower():
        reason = "rate-limited"
        hint = f"the CA's rate limit: wait until the time its message gives; try setups on ACME_DIRECTORY_URL={STAGING}"
    elif "CERTIFICATE_VERIFY_FAILED" in output or "SSLError" in output:
        reason = "ca-untrusted"
        hint = (
            f"the ACME server's HTTPS certificate is not trusted: for a private CA, set ACME_CA_BUNDLE to the PEM of "
            f"the CA that signed it ({settings.directory})"
        )
    elif any(marker in output for marker in CA_UNREACHABLE):
        reason = "ca-unreachable"
        hint = (
            f"cannot reach the ACME server at {settings.directory}: check ACME_DIRECTORY_URL and this host's "
            "outbound HTTPS, then run `stackctl certs renew`"
        )
    else:
        reason = "failed"
        hint = "see certbot's log in the acme volume (/acme/logs/letsencrypt.log), then run `stackctl certs renew`"
    message = " | ".join((detail or lines)[-6:])[:900]
    return {"reason": reason, "hint": hint, "message": message}


def renew(settings: Settings, *, force: bool, scheduled: bool, dry_run: bool = False) -> tuple[int, dict[str, Any]]:
    """Ask the CA for a certificate if one is due, then install it. (exit code, report)
    dry_run: only say whether the CA would be asked, and why."""
    if dry_run:
        reason = why_renew(settings, now_utc(), force=force)
        return 0, {"action": "would-ask-the-ca" if reason else "none", "reason": reason, **status(settings)}
    with locked():
        now = now_utc()
        state = read_state()
        bootstrap(settings)
        reason = why_renew(settings, now, force=force)
        result: dict[str, Any] = {"action": "none", "reason": reason}
        failed = False
        if reason is None:
            result["action"] = "installed" if install_lineage() else "none"
            log("the certificate is up to date: nothing asked of the CA")
        else:
            log(f"asking {settings.directory} for a certificate for {', '.join(settings.domains)}: {reason}")
            state["last_attempt"] = iso(now)
            state["last_attempt_scheduled"] = scheduled
            code, output = run_certbot(settings, renewing=lineage_dir().exists())
            if code == 0 and install_lineage():
                state["last_success"] = iso(now_utc())
                state.pop("last_error", None)
                result["action"] = "issued"
            elif code == 0:
                state["last_error"] = {"reason": "failed", "hint": "certbot issued nothing; see /acme/logs",
                                       "message": output[-400:], "at": iso(now)}  # fmt: skip
                failed = True
            else:
                state["last_error"] = {**classify(output, settings), "at": iso(now)}
                failed = True
            write_state(state)
        result.update(status(settings))
        if failed:
            error = state["last_error"]
            log(f"failed ({error['reason']}): {error['message']}")
            log(f"fix: {error['hint']}")
            return 1, result
        return 0, result


def run_certbot(settings: Settings, *, renewing: bool) -> tuple[int, str]:
    env = dict(os.environ)
    if settings.ca_bundle:
        env["REQUESTS_CA_BUNDLE"] = settings.ca_bundle
    for attempt in (1, 2):
        try:
            proc = subprocess.run(
                certbot_command(settings, renewing=renewing),
                capture_output=True, text=True, env=env, timeout=CERTBOT_TIMEOUT, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return 1, f"certbot timed out after {CERTBOT_TIMEOUT}s: Max retries exceeded (timed out)"
        output = f"{proc.stdout}\n{proc.stderr}"
        # A CA may refuse a nonce now and then (pebble refuses some on purpose): once more.
        if proc.returncode == 0 or "badNonce" not in output or attempt == 2:
            return proc.returncode, output
        log("the CA refused a nonce (badNonce); trying once more")
    return 1, ""


# -- status -----------------------------------------------------------------------------------
def next_check(settings: Settings, now: dt.datetime) -> str | None:
    try:
        scheduler = json.loads(Path(os.environ.get("BACKUP_ROOT", "/backups"), ".scheduler.json").read_text())
        planned = scheduler["jobs"]["certs"]["next_run"]
        if isinstance(planned, str):
            return planned
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if not settings.cron:
        return None
    try:
        from croniter import croniter

        return iso(croniter(settings.cron, now).get_next(dt.datetime).astimezone(UTC))
    except (ImportError, ValueError, KeyError):
        return None


def status(settings: Settings, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or now_utc()
    state = read_state()
    current = serving()
    left = days_left(current, now) if current else None
    error = state.get("last_error")
    problem = None
    if current is None:
        problem = "nginx has no certificate to serve"
    elif left is not None and left <= 0:
        problem = f"the certificate expired on {current['not_after']}"
    elif left is not None and left < URGENT_DAYS:
        problem = f"the certificate expires in {left:.1f} days"
    elif error and (current["temporary"] or (left is not None and left <= settings.renew_days)):
        what = "a temporary self-signed certificate is served" if current["temporary"] else (
            f"the certificate expires in {left:.0f} days")  # fmt: skip
        problem = f"{what} and the CA did not issue a new one ({error.get('reason')})"
    # The backup service's health: unhealthy when what nginx serves is about to stop working
    # and nothing renews it. A temporary certificate after a failed first issuance is a
    # problem, but not an unhealthy service: `up` would then wait on it instead of saying why.
    healthy = problem is None or (current is not None and current["temporary"] and (left or 0) >= URGENT_DAYS)
    return {
        "domains": settings.domains,
        "directory": settings.directory,
        "serving": current,
        "days_left": round(left, 2) if left is not None else None,
        "renew_days": settings.renew_days,
        "last_attempt": state.get("last_attempt"),
        "last_success": state.get("last_success"),
        "last_error": error,
        "next_check": next_check(settings, now),
        "ok": problem is None,
        "healthy": healthy,
        "problem": problem,
    }


def health(now: dt.datetime | None = None) -> dict[str, Any] | None:
    """For backupctl's healthcheck: None when the stack has no ACME certificate."""
    settings = Settings()
    if not settings.domains:
        return None
    return status(settings, now)


def _print(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, sort_keys=True), flush=True)
        return
    for key, value in report.items():
        print(f"{key}: {value}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="certctl.py", description="the stack's ACME certificate")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("bootstrap", help="give nginx a certificate to serve (a temporary one if need be)")
    renewing = sub.add_parser("renew", help="ask the CA for a certificate if one is due, then install it")
    renewing.add_argument("--force", action="store_true", help="ask even if the current one is good")
    renewing.add_argument("--scheduled", action="store_true", help="a run of the backup scheduler")
    renewing.add_argument("--dry-run", action="store_true", help="only say whether the CA would be asked, and why")
    renewing.add_argument("--json", action="store_true")
    stat = sub.add_parser("status", help="the served certificate, the last and next renewal")
    stat.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    settings = Settings()
    missing = settings.missing()
    if missing:
        log(f"error: {', '.join(missing)} not set (TLS_CERT_SOURCE=acme states them in the backup service)")
        return 78
    if args.command == "bootstrap":
        with locked():
            print(json.dumps({"bootstrap": bootstrap(settings)}), flush=True)
        return 0
    if args.command == "status":
        _print(status(settings), args.json)
        return 0
    code, report = renew(settings, force=args.force, scheduled=args.scheduled, dry_run=args.dry_run)
    _print(report, args.json)
    return code


if __name__ == "__main__":
    sys.exit(main())
