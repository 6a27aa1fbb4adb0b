"""`stackctl init --env NAME`: a named environment beside prod, in an initialised project.

`.env.NAME` starts from `.env.prod`'s values with what must differ between two stacks on one
host made anew: fresh secrets (as `stackctl init` makes them for prod), free host ports (not
those of any other env file here, nor bound on this host), and host names under the
environment's own (`staging.example.com`; `localhost` and IP addresses stay as they are).
The compose project is `<STACK_NAME>-NAME` (prod's is `<STACK_NAME>-prod`), so containers,
networks and volumes are its own. Everything is validated and rendered in memory first,
then written at once (or, with --dry-run, only shown).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from stackctl.adapters.files import read_bytes_or_none
from stackctl.config import load_config
from stackctl.config.loader import parse_env
from stackctl.config.model import NginxGroup
from stackctl.config.profile import DEV, PROD, Environment
from stackctl.core.plan import Action, PlannedFile, RenderPlan, apply_plan, plan_files
from stackctl.core.project import Project
from stackctl.core.render import render_set
from stackctl.errors import ConfigProblem, ConflictError, StackctlError

# What `stackctl init` generates for prod, made anew for each named environment.
# A secret this long is found verbatim only where it was copied (init's SECRET_KEY, DATABASE_URL).
MIN_COPIED_SECRET = 16
FRESH_SECRETS = {"DJANGO_SECRET_KEY": 50, "POSTGRES_PASSWORD": 24, "DB_APP_PASSWORD": 24, "REDIS_PASSWORD": 24}
HOST_VARIABLES = ("SERVER_NAME", "DJANGO_ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS")
FIRST_PORTS = {"HTTP_PORT": 8080, "HTTPS_PORT": 8443}  # where the search for free ones starts
PORT_SEARCH = 2000


@dataclass
class EnvInitResult:
    env: Environment
    env_file: str  # relative to the stack's folder
    compose_project: str
    ports: dict[str, int]  # HTTP_PORT, HTTPS_PORT
    hosts: dict[str, str]  # SERVER_NAME, DJANGO_ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS (those set)
    plan: RenderPlan
    written: list[str] = field(default_factory=list)
    warnings: list[ConfigProblem] = field(default_factory=list)


def _set(text: str, name: str, value: str) -> str:
    """`text` with `name`'s line set to `value` (appended when missing)."""
    line = f"{name}={value}"
    text, found = re.subn(rf"^{name}=.*$", lambda _m: line, text, flags=re.M)
    if not found:
        text = text + ("" if text.endswith("\n") or not text else "\n") + line + "\n"
    return text


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def env_host(name: str, host: str) -> str:
    """A host name of prod's, for environment `name`: `staging.example.com`; localhost, IP
    addresses and wildcards are kept."""
    if not host or host == "localhost" or _is_address(host) or host.startswith((".", "*")):
        return host
    return f"{name}.{host}"


def _origin(name: str, origin: str, ports: Mapping[int, int]) -> str:
    parts = urlsplit(origin)
    if not parts.hostname:
        return origin
    netloc = env_host(name, parts.hostname)
    if parts.port:
        netloc += f":{ports.get(parts.port, parts.port)}"
    return parts._replace(netloc=netloc).geturl()


def host_values(name: str, prod: Mapping[str, str | None], ports: Mapping[int, int]) -> dict[str, str]:
    """SERVER_NAME, DJANGO_ALLOWED_HOSTS and CSRF_TRUSTED_ORIGINS for the environment, from
    prod's (only those prod sets; the defaults are local names, kept)."""
    values = {}
    if prod.get("SERVER_NAME"):
        values["SERVER_NAME"] = " ".join(env_host(name, h) for h in str(prod["SERVER_NAME"]).split())
    if prod.get("DJANGO_ALLOWED_HOSTS"):
        hosts = str(prod["DJANGO_ALLOWED_HOSTS"]).split(",")
        values["DJANGO_ALLOWED_HOSTS"] = ",".join(env_host(name, h.strip()) for h in hosts)
    if prod.get("CSRF_TRUSTED_ORIGINS"):
        origins = str(prod["CSRF_TRUSTED_ORIGINS"]).split(",")
        values["CSRF_TRUSTED_ORIGINS"] = ",".join(_origin(name, o.strip(), ports) for o in origins)
    return values


def used_ports(project: Project, skip: Environment) -> set[int]:
    """The host ports every other env file of the project publishes nginx on."""
    envs = [DEV, PROD, *(Environment.named(n) for n in project.named_environments())]
    used = set()
    for env in envs:
        data = read_bytes_or_none(project.env_file(env))
        if env == skip or data is None:
            continue
        raw = parse_env(data.decode("utf-8", errors="replace"))
        for variable in FIRST_PORTS:
            value = raw.get(variable) or str(NginxGroup.model_fields[variable.lower()].default)
            if value.isdigit():
                used.add(int(value))
    return used


def free_ports(used: set[int], taken: Callable[[int], bool]) -> dict[str, int]:
    """A port for each of HTTP_PORT and HTTPS_PORT, from FIRST_PORTS up: in no env file, and
    bindable on this host."""
    chosen: dict[str, int] = {}
    for variable, first in FIRST_PORTS.items():
        port = next(
            (
                p
                for p in range(first, first + PORT_SEARCH)
                if p not in used and p not in chosen.values() and not taken(p)
            ),
            None,
        )
        if port is None:
            raise StackctlError(
                f"no free port for {variable} in {first}-{first + PORT_SEARCH - 1}",
                hint=f"set {variable} in the new env file yourself",
            )
        chosen[variable] = port
    return chosen


def run_init_env(
    root: Path,
    name: str,
    *,
    dry_run: bool = False,
    force: bool = False,
    port_taken: Callable[[str, int], bool] | None = None,
) -> EnvInitResult:
    """Write `.env.NAME` from `.env.prod` (fresh secrets, own ports and host names) and render
    the environment's set. Refuses when `.env.NAME` exists, unless `force`."""
    env = Environment.named(name)
    if not env.is_named:
        raise StackctlError(
            f"{name} is a built-in environment: `stackctl init` makes .env and .env.prod",
            hint="name another one, e.g. --env staging",
        )
    project = Project.at(root)
    prod_file, target = project.env_file(PROD), project.env_file(env)
    prod_data = read_bytes_or_none(prod_file)
    if prod_data is None:
        raise StackctlError(
            f"{prod_file.name} is missing: a named environment starts from prod's", hint="run `stackctl init` first"
        )
    if target.exists() and not force:
        raise ConflictError(f"{target.name} exists already", hint="pass --force to write it anew (fresh secrets)")
    prod_text = prod_data.decode("utf-8", errors="replace")
    prod_raw = parse_env(prod_text)
    from stackctl.adapters import host

    taken = port_taken or host.port_taken
    address = str(prod_raw.get("NGINX_BIND_ADDRESS") or NginxGroup.model_fields["nginx_bind_address"].default)
    ports = free_ports(used_ports(project, env), lambda port: taken(address, port))
    prod_ports = {
        int(str(prod_raw.get(v) or NginxGroup.model_fields[v.lower()].default)): ports[v] for v in FIRST_PORTS
    }
    hosts = host_values(env.name, prod_raw, prod_ports)
    text = prod_text.replace("prod settings.", f"{env.name} settings (made from .env.prod).", 1)
    for variable, length in FRESH_SECRETS.items():
        fresh, old = secrets.token_urlsafe(length), prod_raw.get(variable) or ""
        if len(old) >= MIN_COPIED_SECRET:
            # prod's secret copied into lines of the app's own (SECRET_KEY, a DATABASE_URL): the
            # new environment's everywhere
            text = text.replace(old, fresh)
        text = _set(text, variable, fresh)
    for variable, value in {**{k: str(v) for k, v in ports.items()}, **hosts}.items():
        text = _set(text, variable, value)
    loaded = load_config(target, profile=env.profile, env_name=env.name, text=text)
    plan = plan_files(project.root, render_set(loaded.config))
    action = Action.OVERWRITE if target.exists() else Action.CREATE
    plan.files.insert(0, PlannedFile(target.name, action, text.encode(), 0o600))
    _ignore(project, plan, target.name)
    result = EnvInitResult(
        env, target.name, loaded.config.project_name, ports, hosts, plan, warnings=list(loaded.warnings)
    )
    if not dry_run:
        result.written = [f.path for f in apply_plan(plan, force=force)]
    return result


def _ignore(project: Project, plan: RenderPlan, env_file: str) -> None:
    """The new env file holds secrets: .gitignore gets a line for it."""
    current = (read_bytes_or_none(project.root / ".gitignore") or b"").decode("utf-8", errors="replace")
    if env_file in {line.strip() for line in current.splitlines()}:
        return
    text = current + ("" if current.endswith("\n") or not current else "\n") + f"{env_file}\n"
    action = Action.OVERWRITE if current else Action.CREATE
    plan.files.insert(1, PlannedFile(".gitignore", action, text.encode(), 0o644))
