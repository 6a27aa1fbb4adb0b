"""ACME certificates (TLS_CERT_SOURCE=acme): the stack side of the backup container's certctl.py.

certctl.py (templates/backup/) does the work inside the stack, with certbot: it gives nginx
a temporary self-signed certificate, asks the CA for the real one by http-01 when one is
due, installs it for nginx's next handshake, and keeps its state in the `acme` volume. The
backup scheduler runs its renewal check on ACME_RENEW_CRON. Here: `up` runs `bootstrap`
before nginx starts and `renew` once the stack is healthy; `stackctl certs` shows and renews.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from python_on_whales.exceptions import DockerException

from stackctl.core.backup import SERVICE, backup_container, last_json
from stackctl.core.progress import Report, quiet
from stackctl.errors import CertificateError, StackctlError, stderr_tail

if TYPE_CHECKING:
    from stackctl.core.stack import Stack, StackView


@dataclass(frozen=True)
class CertError:
    reason: str  # challenge-failed, ca-unreachable, ca-untrusted, rate-limited, failed
    message: str  # certbot's own words (never a secret: it prints none)
    hint: str
    at: str | None


@dataclass(frozen=True)
class CertStatus:
    domains: list[str]
    directory: str
    serial: str | None
    issuer: str | None
    not_before: str | None
    not_after: str | None
    names: list[str]  # the served certificate's subjectAltName DNS names
    temporary: bool  # the self-signed stand-in, until the CA issues one
    days_left: float | None
    renew_days: int
    last_attempt: str | None
    last_success: str | None
    next_check: str | None
    last_error: CertError | None
    ok: bool  # no problem at all
    healthy: bool  # what the backup service's health says: False when it is about to stop working
    problem: str | None

    @classmethod
    def of(cls, report: dict[str, Any]) -> CertStatus:
        serving = report.get("serving") or {}
        error = report.get("last_error")
        return cls(
            domains=list(report.get("domains") or []),
            directory=str(report.get("directory") or ""),
            serial=serving.get("serial"),
            issuer=serving.get("issuer"),
            not_before=serving.get("not_before"),
            not_after=serving.get("not_after"),
            names=list(serving.get("domains") or []),
            temporary=bool(serving.get("temporary")),
            days_left=report.get("days_left"),
            renew_days=int(report.get("renew_days") or 30),
            last_attempt=report.get("last_attempt"),
            last_success=report.get("last_success"),
            next_check=report.get("next_check"),
            last_error=CertError(
                str(error.get("reason")), str(error.get("message")), str(error.get("hint")), error.get("at")
            )
            if isinstance(error, dict)
            else None,
            ok=bool(report.get("ok")),
            healthy=bool(report.get("healthy", report.get("ok"))),
            problem=report.get("problem"),
        )


@dataclass(frozen=True)
class RenewResult:
    action: str  # issued, installed (the CA's certificate put back in place), none, failed; would-ask-the-ca (dry run)
    reason: str | None  # why the CA was asked; None: it was not
    status: CertStatus
    error: str | None = None  # with check=False: what failed and what nginx serves meanwhile
    hint: str | None = None


def require_acme(acme: bool, env_file: str) -> None:
    if not acme:
        raise StackctlError(
            f"{env_file} does not use ACME certificates",
            hint="set USE_TLS=true and TLS_CERT_SOURCE=acme (with SERVER_NAME your domain names), then `stackctl up`",
        )


def bootstrap(stack: Stack, report: Report = quiet) -> str:
    """Before nginx starts: a certificate for it to serve (the CA's, else a temporary one), in a
    one-off container of the backup service (its volumes; no database needed)."""
    try:
        out = stack.client.compose.run(SERVICE, ["certctl.py", "bootstrap"], remove=True, dependencies=False, tty=False)
    except DockerException as exc:
        raise CertificateError(
            f"preparing nginx's certificate failed (exit {exc.return_code})\n{stderr_tail(exc.stderr)}".rstrip()
        ) from None
    state = str(last_json(str(out or "")).get("bootstrap") or "")
    if state == "temporary":
        report("nginx starts with a temporary self-signed certificate until the CA issues one")
    return state


def renew(
    stack: StackView, *, force: bool = False, check: bool = True, dry_run: bool = False, report: Report = quiet
) -> RenewResult:
    """Ask the CA for a certificate when one is due (or `force`), install it for nginx's next
    handshake. When the CA did not issue one (nginx keeps serving the certificate it had):
    raises CertificateError with certctl's reason and fix, or with check=False returns them."""
    backup_container(stack)
    what = "a new certificate (--force)" if force else "a certificate if one is due"
    if not dry_run:
        report(f"asking the CA for {what}")
    argv = ["certctl.py", "renew", "--json", *(["--force"] if force else []), *(["--dry-run"] if dry_run else [])]
    try:
        out = stack.client.compose.execute(SERVICE, argv, tty=False)
    except DockerException as exc:
        payload = last_json(str(exc.stdout or ""))
        if not payload:
            raise CertificateError(
                f"the certificate renewal failed (exit {exc.return_code})\n{stderr_tail(exc.stderr)}".rstrip()
            ) from None
        status = CertStatus.of(payload)
        failure = _failure(status)
        if check:
            raise failure from None
        return RenewResult("failed", payload.get("reason"), status, failure.message, failure.hint)
    payload = last_json(str(out or ""))
    return RenewResult(str(payload.get("action") or "none"), payload.get("reason"), CertStatus.of(payload))


def _failure(status: CertStatus) -> CertificateError:
    error = status.last_error
    kept = (
        "nginx keeps serving a temporary self-signed certificate"
        if status.temporary
        else f"nginx keeps serving the certificate it had (serial {status.serial}, until {status.not_after})"
    )
    if error is None:
        return CertificateError(f"the CA did not issue a certificate; {kept}")
    return CertificateError(
        f"the CA did not issue a certificate for {', '.join(status.domains)} ({error.reason}): {error.message}\n{kept}",
        hint=error.hint,
    )


def status(stack: StackView) -> CertStatus:
    backup_container(stack)
    try:
        out = stack.client.compose.execute(SERVICE, ["certctl.py", "status", "--json"], tty=False)
    except DockerException as exc:
        raise CertificateError(
            f"reading the certificate's status failed (exit {exc.return_code})\n{stderr_tail(exc.stderr)}".rstrip(),
            hint="the stack must use TLS_CERT_SOURCE=acme and be up",
        ) from None
    return CertStatus.of(last_json(str(out or "")))
