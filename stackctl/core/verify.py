"""Verify the settings in effect in a running stack against its validated config.

The web image ships `stackctl_verify` (templates/compose/stackctl/): run in the web container,
under the settings that really run, it prints one JSON line (DEBUG, the default database,
STATIC_ROOT/MEDIA_ROOT, whether SECRET_KEY is insecure, `check --deploy`'s messages).
`compare` holds it against the config; `verify_settings` runs it and raises
SettingsNotVerified, naming each setting and its fix, when anything is off.

`check --deploy`'s messages in prod (FATAL_CHECKS is the one table): an ERROR, or a warning
that guards what stackctl promises (DEBUG, SECRET_KEY, ALLOWED_HOSTS, the security middleware,
the session and CSRF cookies, HSTS and HTTPS), fails; with TLS off (USE_TLS=false) the ones
only HTTPS can satisfy are allowed (and listed as such). Every other warning (a header the
project sets otherwise on purpose, such as security.W019 for django CMS's SAMEORIGIN, or a
third-party app's own check) is reported, not fatal. An id listed in DJANGO_SILENCED_CHECKS
(the overlay appends it to SILENCED_SYSTEM_CHECKS) is accepted, and listed as silenced.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ValidationError
from python_on_whales.exceptions import DockerException

from stackctl.config import StackConfig
from stackctl.config.webimage import VERIFY_MODULE
from stackctl.errors import SettingsNotVerified, StackctlError, stderr_tail

if TYPE_CHECKING:
    from stackctl.core.stack import Stack

# Deployment checks only HTTPS can satisfy, and the variable that does when TLS is on.
TLS_CHECKS: dict[str, str] = {
    "security.W004": "SECURE_HSTS_SECONDS",
    "security.W005": "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "security.W008": "SECURE_SSL_REDIRECT",
    "security.W010": "SESSION_COOKIE_SECURE",
    "security.W011": "SESSION_COOKIE_SECURE",
    "security.W012": "SESSION_COOKIE_SECURE",
    "security.W016": "CSRF_COOKIE_SECURE",
    "security.W021": "SECURE_HSTS_PRELOAD",
}
# Deployment warnings that guard what stackctl promises, and how to fix each: fatal in prod.
# Django's others (security.W002, W006, W019, W022: clickjacking, nosniff and referrer
# headers a project may set otherwise on purpose, or nginx may set) and every app's own
# warning are reported as warnings. Any ERROR-level message fails, whatever its id.
SILENCE_HINT = "or, if the project means it, add the id to DJANGO_SILENCED_CHECKS in the env file"
FATAL_CHECKS: dict[str, str] = {
    **{ident: f"set {variable} in the env file" for ident, variable in TLS_CHECKS.items()},
    "security.W001": "add 'django.middleware.security.SecurityMiddleware' to MIDDLEWARE "
    "(without it the SECURE_* and HSTS variables do nothing)",
    "security.W003": "add 'django.middleware.csrf.CsrfViewMiddleware' to MIDDLEWARE "
    "(without it CSRF_COOKIE_SECURE and CSRF_TRUSTED_ORIGINS protect nothing)",
    "security.W009": "set DJANGO_SECRET_KEY in the env file (50+ random characters)",
    "security.W013": "leave SESSION_COOKIE_HTTPONLY at True in the project's settings",
    "security.W014": "leave SESSION_COOKIE_HTTPONLY at True in the project's settings",
    "security.W015": "leave SESSION_COOKIE_HTTPONLY at True in the project's settings",
    "security.W018": "set DJANGO_DEBUG=false in the env file",
    "security.W020": "set DJANGO_ALLOWED_HOSTS in the env file",
    "security.W025": "make every SECRET_KEY_FALLBACKS key 50+ random characters, or drop the old ones",
}
# Check messages that say what a finding of ours already says.
SAME_AS_FINDING = {"security.W009": "SECRET_KEY", "security.W018": "DEBUG"}
SILENCED_BY = "silenced by DJANGO_SILENCED_CHECKS"
FATAL_LEVELS = ("ERROR", "CRITICAL")
POSTGRES = "postgresql"


class DeployCheck(BaseModel):
    id: str
    level: str
    msg: str
    hint: str = ""
    silenced: bool = False  # in SILENCED_SYSTEM_CHECKS (the project's, or DJANGO_SILENCED_CHECKS)


class DatabaseSeen(BaseModel):
    vendor: str
    engine: str
    host: str
    name: str


class SettingsSeen(BaseModel):
    """What stackctl_verify printed: the settings in effect in the web container."""

    settings_module: str
    overlay: bool
    debug: bool
    database: DatabaseSeen
    static_root: str
    media_root: str
    secret_key_insecure: bool
    checks: list[DeployCheck]
    sentry: str = "off"
    routes: dict[str, str] = {}  # the paths the app routes, of those stackctl lists (graphql, admin)


@dataclass(frozen=True)
class Finding:
    """One setting in effect that is not what the config says: where, what, and the fix."""

    setting: str
    found: str
    expected: str
    fix: str

    def render(self) -> str:
        return f"{self.setting}: {self.found} (expected {self.expected}); fix: {self.fix}"


@dataclass(frozen=True)
class SettingsReport:
    profile: str
    settings_module: str
    seen: SettingsSeen
    failures: tuple[Finding, ...]
    allowed: tuple[Finding, ...]  # deployment checks accepted while TLS is off
    notes: tuple[str, ...]
    warnings: tuple[Finding, ...] = ()  # check messages reported, not fatal (an app's own, W019...)
    silenced: tuple[Finding, ...] = ()  # check messages accepted by DJANGO_SILENCED_CHECKS

    @property
    def ok(self) -> bool:
        return not self.failures


def expected_database(cfg: StackConfig) -> tuple[str, str]:
    """(host, name) the default database must use: DATABASE_URL's, else POSTGRES_HOST/DB."""
    db = cfg.database
    if db.database_url is not None:
        url = urlsplit(db.database_url.get_secret_value())
        return url.hostname or "", unquote(url.path.lstrip("/"))
    return db.postgres_host, db.postgres_db


def _settings_fix(cfg: StackConfig, what: str) -> str:
    """How to make the project's settings module honour a variable."""
    dj = cfg.django
    if dj.django_settings_overlay:
        return (
            f"the overlay sets {what}, so something replaced it: check that the ASGI module "
            f"({dj.django_asgi_application}) uses os.environ.setdefault for DJANGO_SETTINGS_MODULE"
        )
    return (
        f"read {what} from the environment in {dj.django_settings_module}, "
        "or set DJANGO_SETTINGS_OVERLAY=true so that stackctl's overlay sets it"
    )


def _core_findings(cfg: StackConfig, seen: SettingsSeen) -> list[Finding]:
    found: list[Finding] = []
    image = cfg.web_image
    if seen.settings_module != image.settings_module:
        found.append(
            Finding(
                "DJANGO_SETTINGS_MODULE",
                seen.settings_module,
                image.settings_module,
                "let DJANGO_SETTINGS_MODULE come from the environment: use os.environ.setdefault in "
                f"{cfg.django.django_asgi_application.partition(':')[0]} and manage.py",
            )
        )
    if seen.debug != cfg.django.django_debug:
        wanted = str(cfg.django.django_debug)
        found.append(Finding("DEBUG", str(seen.debug), wanted, _settings_fix(cfg, "DEBUG (DJANGO_DEBUG)")))
    host, name = expected_database(cfg)
    db = seen.database
    where = f"{db.vendor or 'none'} at {db.host or '(no host)'}, database {db.name or '(none)'}"
    if db.vendor != POSTGRES or db.host != host or db.name != name:
        found.append(
            Finding(
                "DATABASES['default']",
                where,
                f"{POSTGRES} at {host}, database {name}",
                _settings_fix(cfg, "DATABASES from DATABASE_URL or POSTGRES_*"),
            )
        )
    for setting, value, wanted in (
        ("STATIC_ROOT", seen.static_root, cfg.storage.static_root),
        ("MEDIA_ROOT", seen.media_root, cfg.storage.media_root),
    ):
        if (value.rstrip("/") or "/") != wanted:
            volume = "static" if setting == "STATIC_ROOT" else "media"
            found.append(
                Finding(
                    setting,
                    value or "(not set)",
                    f"{wanted} (the {volume} volume nginx serves)",
                    _settings_fix(cfg, setting),
                )
            )
    return found


@dataclass
class DeployFindings:
    """`check --deploy`'s messages, sorted: what fails, what TLS off allows, what is only
    reported, what DJANGO_SILENCED_CHECKS accepts."""

    failures: list[Finding]
    allowed: list[Finding]
    warnings: list[Finding]
    silenced: list[Finding]


def _secret_key_finding(cfg: StackConfig) -> Finding:
    return Finding(
        "SECRET_KEY",
        "insecure (empty, under 50 characters, under 5 distinct ones, or django-insecure-)",
        "50+ random characters",
        _settings_fix(cfg, "SECRET_KEY (DJANGO_SECRET_KEY)")
        + "; generate one: python3 -c 'import secrets; print(secrets.token_urlsafe(50))'",
    )


def is_fatal(check: DeployCheck) -> bool:
    """An ERROR (or worse), or a warning of FATAL_CHECKS."""
    return check.level in FATAL_LEVELS or check.id in FATAL_CHECKS


def _deploy_findings(cfg: StackConfig, seen: SettingsSeen, done: set[str]) -> DeployFindings:
    found = DeployFindings([], [], [], [])
    if seen.secret_key_insecure:
        found.failures.append(_secret_key_finding(cfg))
        done.add("SECRET_KEY")
    silenced_ids = set(cfg.security.django_silenced_checks)
    for check in seen.checks:
        if SAME_AS_FINDING.get(check.id) in done:
            continue
        if check.silenced and check.id not in silenced_ids:
            continue  # the project's own SILENCED_SYSTEM_CHECKS: its decision, as Django's
        fatal = is_fatal(check)
        variable = TLS_CHECKS.get(check.id)
        fix = FATAL_CHECKS.get(check.id) or check.hint or "see `manage.py check --deploy`"
        finding = Finding(
            check.id,
            f"{check.level}: {check.msg}",
            "no message from check --deploy",
            f"{fix}; {SILENCE_HINT}" if check.id in FATAL_CHECKS and not variable else fix,
        )
        if check.id in silenced_ids:  # also when the overlay is off: verify honours the list
            found.silenced.append(Finding(finding.setting, finding.found, SILENCED_BY, fix))
        elif variable and not cfg.nginx.use_tls:
            found.allowed.append(
                Finding(finding.setting, finding.found, "allowed while USE_TLS=false", f"with TLS on, set {variable}")
            )
        elif fatal:
            found.failures.append(finding)
        else:
            found.warnings.append(Finding(finding.setting, finding.found, "a warning, not fatal", fix))
    return found


def _notes(cfg: StackConfig, seen: SettingsSeen) -> list[str]:
    if cfg.django.sentry_dsn is None:
        return []
    if seen.sentry == "missing":
        return ["SENTRY_DSN is set but the project does not install sentry-sdk: errors are not reported"]
    if seen.sentry == "off":
        return ["SENTRY_DSN is set but the settings in effect did not initialise sentry-sdk"]
    return []


def compare(cfg: StackConfig, seen: SettingsSeen) -> SettingsReport:
    """Hold the settings in effect against the config. Prod adds the deployment rules."""
    failures = _core_findings(cfg, seen)
    deploy = DeployFindings([], [], [], [])
    if cfg.profile == "prod":
        deploy = _deploy_findings(cfg, seen, {f.setting for f in failures})
    return SettingsReport(
        cfg.profile,
        seen.settings_module,
        seen,
        tuple(failures + deploy.failures),
        tuple(deploy.allowed),
        tuple(_notes(cfg, seen)),
        warnings=tuple(deploy.warnings),
        silenced=tuple(deploy.silenced),
    )


def parse_probe(output: str) -> SettingsSeen:
    """The last line of the probe's stdout, as SettingsSeen."""
    lines = [line for line in output.splitlines() if line.strip()]
    try:
        return SettingsSeen.model_validate(json.loads(lines[-1]))
    except (IndexError, ValueError, ValidationError) as exc:
        raise StackctlError(
            f"{VERIFY_MODULE} printed no settings report ({type(exc).__name__})",
            hint="is the web image built by this version of stackctl? run `stackctl up` to rebuild it",
        ) from None


def run_probe(stack: Stack) -> str:
    """Run stackctl_verify in the running web container (its working directory, /app). By
    container name, not `compose exec web`: that means container 1, and after a deploy the
    serving container has another number."""
    web = stack.running_service("web")  # else: exited, restarting, with its last exception
    try:
        output = stack.client.container.execute(web.container, ["python", "-m", VERIFY_MODULE], tty=False)
    except DockerException as exc:
        raise StackctlError(
            f"could not read the settings in effect in web (exit {exc.return_code})\n{stderr_tail(exc.stderr, 5)}",
            hint=f"is the stack up? see `stackctl logs web`, or start it: {stack.up_command}",
        ) from None
    return str(output or "")


def probe_routes(stack: Stack) -> dict[str, str]:
    """The routes the app has, of those `up` lists (stackctl_verify's `routes`, run in web).
    Best effort: a probe that fails lists no route, it does not fail `up`."""
    try:
        web = stack.running_service("web")
        output = stack.client.container.execute(web.container, ["python", "-m", VERIFY_MODULE, "routes"], tty=False)
        lines = [line for line in str(output or "").splitlines() if line.strip()]
        found = json.loads(lines[-1]) if lines else {}
    except (StackctlError, DockerException, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def verify_settings(stack: Stack, *, probe: Callable[[Stack], str] = run_probe) -> SettingsReport:
    """The settings in effect in `stack`'s web container, compared with its config; raises
    SettingsNotVerified (exit 6) listing each failure and its fix."""
    report = compare(stack.config, parse_probe(probe(stack)))
    if report.failures:
        env_name = stack.env_file.name
        lines = "\n".join(f"  {f.render()}" for f in report.failures)
        raise SettingsNotVerified(
            f"the settings in effect in web ({report.settings_module}) do not match {env_name}:\n{lines}",
            findings=report.failures,
            hint=f"fix them, then run `{stack.up_command}` again",
        )
    return report
