"""Why a Python service failed, read from its logs: the last traceback, the project's line in
it, and the fix.

A web that fails its healthcheck logs one `Internal Server Error: /healthz` per probe; the
exception that explains them is further up (an import error at start, a missing variable).
`last_traceback` searches backwards for the last `Traceback (most recent call last):` and
returns its last frames and its exception line, whatever follows it in the log;
`failure_hint` turns that into what to do: the env variable to set when the exception names
one, else the project's file and line to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TRACEBACK_HEADER = "Traceback (most recent call last):"
SHOWN_FRAMES = 3  # the last frames of a traceback quoted in an error

# compose's prefix of each log line: `web-1  | ` (and a replaced container's `web-2  | `)
LOG_PREFIX = re.compile(r"^[\w.-]+(?:-\d+)?\s+\| ?")
FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)(?:, in (?P<function>.+))?$')
# the exception line: `module.Name: message`, or a bare `Name` (capitalised, as exception classes are)
EXCEPTION_LINE = re.compile(r"^(?P<type>(?:[A-Za-z_]\w*\.)*[A-Z]\w*)(?::\s?(?P<message>.*))?$")
PROJECT_ROOT = "/app/"
# where the project's own code is not: the interpreter's library, installed packages, stackctl's modules
NOT_THE_PROJECT = ("/site-packages/", "/dist-packages/", "/usr/lib/python", "/usr/local/lib/python", "/opt/stackctl")
VARIABLE = r"([A-Z][A-Z0-9_]*[A-Z0-9])"
# how code and exceptions name a missing environment variable
VARIABLE_PATTERNS = (
    re.compile(r"environ\[\s*['\"]" + VARIABLE + r"['\"]\s*\]"),
    re.compile(r"\b(?:environ\.get|getenv|env(?:\.\w+)?|config)\(\s*['\"]" + VARIABLE + r"['\"]"),
    re.compile(r"\b[Ss]et the " + VARIABLE + r" environment variable"),
    re.compile(r"environment variable ['\"]?" + VARIABLE),
    re.compile(VARIABLE + r"['\"]? (?:environment variable|is not set|must be set|is required|not set)"),
)


@dataclass(frozen=True)
class Frame:
    path: str
    line: int
    function: str
    code: str  # the source line the traceback shows ("" when it shows none)

    @property
    def in_project(self) -> bool:
        return self.path.startswith(PROJECT_ROOT) and not any(part in self.path for part in NOT_THE_PROJECT)

    @property
    def where(self) -> str:
        """`shop/settings.py:12`: the project's files relative to its folder (/app in web)."""
        path = self.path[len(PROJECT_ROOT) :] if self.path.startswith(PROJECT_ROOT) else self.path
        return f"{path}:{self.line}"


@dataclass(frozen=True)
class Traceback:
    """The last traceback of a log: its frames (all of them) and its exception line."""

    frames: tuple[Frame, ...]
    exception: str  # `ImproperlyConfigured: Set the API_TOKEN environment variable`
    lines: tuple[str, ...]  # the traceback as logged, header to exception line

    @property
    def exception_type(self) -> str:
        found = EXCEPTION_LINE.match(self.exception)
        return found.group("type").rsplit(".", 1)[-1] if found else ""

    @property
    def project_frame(self) -> Frame | None:
        """The innermost frame in the project's own code: the line to look at."""
        return next((f for f in reversed(self.frames) if f.in_project), None)

    @property
    def variable(self) -> str | None:
        """The environment variable the exception (or the project's failing line) names, if any:
        a KeyError only when os.environ raised it, not any dict's."""
        project_line = [f.code for f in reversed(self.frames) if f.in_project][:1]
        for text in [*project_line, self.exception]:
            for pattern in VARIABLE_PATTERNS:
                if found := pattern.search(text):
                    return found.group(1)
        key = re.fullmatch(r"KeyError: ['\"]" + VARIABLE + r"['\"]", self.exception)
        if key and any(f.path.endswith("/os.py") for f in self.frames):
            return key.group(1)
        return None

    def excerpt(self, frames: int = SHOWN_FRAMES) -> str:
        """The header, the last `frames` frames with their source lines, the exception line."""
        kept: list[str] = [TRACEBACK_HEADER]
        if len(self.frames) > frames:
            kept.append(f"  ... ({len(self.frames) - frames} frame(s) above)")
        for frame in self.frames[-frames:]:
            kept.append(f'  File "{frame.path}", line {frame.line}, in {frame.function}')
            if frame.code:
                kept.append(f"    {frame.code}")
        kept.append(self.exception)
        return "\n".join(kept)


def strip_prefix(line: str) -> str:
    return LOG_PREFIX.sub("", line, count=1)


def last_traceback(log: str) -> Traceback | None:
    """The last complete traceback in `log` (compose's line prefixes are ignored), or None."""
    lines = [strip_prefix(line).rstrip() for line in log.splitlines()]
    for start in range(len(lines) - 1, -1, -1):
        if lines[start].strip() == TRACEBACK_HEADER:
            found = _parse(lines[start:])
            if found is not None:
                return found
    return None


def _parse(lines: list[str]) -> Traceback | None:
    """One traceback from its header: indented lines are frames (and their source, carets);
    the first line that is not indented is the exception line."""
    frames: list[Frame] = []
    for index, line in enumerate(lines[1:], start=1):
        if not line.strip():
            continue
        if line[0] in " \t":
            if found := FRAME.match(line):
                frames.append(Frame(found["path"], int(found["line"]), found["function"] or "?", ""))
            elif frames and not frames[-1].code and not set(line.strip()) <= set("^~ "):
                last = frames[-1]
                frames[-1] = Frame(last.path, last.line, last.function, line.strip())
            continue
        if not EXCEPTION_LINE.match(line) or line.startswith(TRACEBACK_HEADER):
            return None  # another record before any exception line: a cut traceback
        return Traceback(tuple(frames), line.strip(), tuple(lines[: index + 1]))
    return None


def failure_hint(traceback: Traceback, *, env_file: str, logs_command: str, up_command: str) -> str:
    """What to do about `traceback`: set the variable it names, or fix the project's line."""
    variable = traceback.variable
    frame = traceback.project_frame
    at = f" ({frame.where})" if frame else ""
    if variable:
        return (
            f"{traceback.exception_type or 'the exception'}{at} names {variable}: set {variable} in {env_file}, "
            f"then run `{up_command}` again"
        )
    if frame:
        return (
            f"fix {frame.where} ({traceback.exception_type or 'the exception'} above), then run `{up_command}` "
            f"again; the whole log: `{logs_command}`"
        )
    return f"fix what the exception above says, then run `{up_command}` again; the whole log: `{logs_command}`"


# what docker's exit codes of `docker exec` mean
EXEC_CODES = {
    126: "docker could not run it in the container (it stopped meanwhile)",
    137: "it was killed (SIGKILL: the container stopped, or its memory limit was reached)",
}


def describe_state(state: str, *, restarts: int, exit_code: int | None, oom_killed: bool) -> str:
    """A container that is not running, plainly: `is restarting (exited 3 times; last exit 1)`."""
    last = f"last exit {exit_code}" if exit_code is not None else "last exit unknown"
    if oom_killed:
        last += ", killed for memory: raise WEB_MEMORY_LIMIT (web) or lower WEB_CONCURRENCY"
    if state == "restarting" or (state == "running" and restarts):
        return f"is restarting (exited {restarts} time{'s' if restarts != 1 else ''}; {last})"
    if state in ("exited", "dead"):
        return f"has {state} ({last})"
    return f"is {state}, not running"


def killed_message(code: int | None, what: str) -> str:
    """Why `what` (run by docker exec) exited with a code of docker's own, or "" for its own codes."""
    meaning = EXEC_CODES.get(code or 0)
    return f"{what} exited {code}: {meaning}" if meaning else ""
