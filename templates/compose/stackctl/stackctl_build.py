"""Build-time helper of the web image's builder stage (stackctl, verbatim).

    python stackctl_build.py pep621 pyproject.toml
        print [project].dependencies, one requirement a line (pip -r reads them)
    python stackctl_build.py add-missing DIST[,DIST...]=REQUIREMENT ...
        pip-install each REQUIREMENT none of whose DISTs is installed in this interpreter,
        without changing any installed version (every one becomes a constraint), then
        import what was added: a build whose added server cannot start fails here
    python3 stackctl_build.py toolchain PACKAGE ...
        apt-get install the PACKAGEs (the C toolchain and headers, BUILD_PACKAGES) and the
        Python headers of this interpreter when the image lacks them (Debian's python3.X-dev)
    python stackctl_build.py runtime-libraries VENV BASE_PACKAGES_FILE [TOOLCHAIN_PACKAGE ...]
        print the Debian packages (one a line) that own the shared libraries VENV's compiled
        modules link to, leaving out those listed in BASE_PACKAGES_FILE (the base image's)
        and -dev packages: what the final image must install so that they load; a library
        not installed here (a module from pip's wheel cache) first gets the toolchain installed

Run with the venv's python: `importlib.metadata` then sees what the project's own install
put there, so a project's own pin of daphne or of a postgres driver always wins.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import tomllib


def pep621(path: str) -> int:
    with open(path, "rb") as handle:
        project = tomllib.load(handle).get("project")
    if not isinstance(project, dict):
        print(f"{path} has no [project] table: a Poetry 1 project needs its poetry.lock", file=sys.stderr)
        return 1
    if "dependencies" in project.get("dynamic", []):
        print(f"{path}: [project].dependencies is dynamic; list them, or use a lock", file=sys.stderr)
        return 1
    for requirement in project.get("dependencies", []):
        print(requirement)
    return 0


def installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def add_missing(specs: list[str]) -> int:
    missing = []
    for spec in specs:
        names, _, requirement = spec.partition("=")
        present = [name for name in names.split(",") if installed(name)]
        if present:
            print(f"stackctl: the project installs {present[0]}; not adding {requirement}", file=sys.stderr)
        else:
            missing.append(requirement)
    if not missing:
        return 0
    pins = sorted({f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()})
    if importlib.util.find_spec("pip") is None:  # a uv or poetry sync may leave the venv without pip
        subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write("\n".join(pins) + "\n")
    print(f"stackctl: adding {' '.join(missing)} (the versions installed so far are kept)", file=sys.stderr)
    pip = [sys.executable, "-m", "pip", "install", "--constraint", constraints.name]
    # A server added without its TLS extra (nginx terminates TLS): daphne's `twisted[tls]`
    # pulls pyOpenSSL, whose releases each cap cryptography; under the project's own newer
    # cryptography pip backtracks to an ancient pyOpenSSL that breaks at import.
    plain = [r for r in missing if _name(r) in WITHOUT_EXTRAS]
    others = [r for r in missing if r not in plain]
    if plain:
        deps = [d for r in plain for d in WITHOUT_EXTRAS[_name(r)]]
        done = subprocess.run([*pip, "--no-deps", *plain], check=False).returncode
        if done:
            return done
        others += deps
    if others:
        done = subprocess.run([*pip, *others], check=False).returncode
        if done:
            return done
    return _imports([_name(r) for r in missing])


# What a requirement added with --no-deps needs instead of its own dependency list.
WITHOUT_EXTRAS = {"daphne": ("asgiref>=3.5.2,<4", "autobahn>=22.4.2", "twisted>=22.4")}
# The module that must import once a distribution is added.
IMPORTS = {"daphne": "daphne.server", "granian": "granian", "django-environ": "environ", "psycopg": "psycopg"}


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>!~; ]", requirement, maxsplit=1)[0].lower()


def _imports(names: list[str]) -> int:
    """Import the modules of what was added; a failure names the requirement and the fix."""
    for name in names:
        module = IMPORTS.get(name)
        if module is None:
            continue
        done = subprocess.run([sys.executable, "-c", f"import {module}"], check=False, capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            print(
                f"stackctl: {name} was added but `import {module}` fails: {last}\n"
                f"stackctl: a version the project pins conflicts with it; list {name} in the project's "
                "dependencies with versions that fit, or pin the conflicting package",
                file=sys.stderr,
            )
            return 1
    return 0


LIBPQ = "libpq5"
LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(not found|\S+)")  # "libpq.so.5 => not found" has no address


def shared_objects(root: str) -> list[str]:
    found = []
    for folder, _dirs, files in os.walk(root):
        found += [os.path.join(folder, name) for name in files if name.endswith(".so") or ".so." in name]
    return sorted(found)


def linked_libraries(path: str) -> tuple[set[str], set[str]]:
    """The resolved paths of the libraries `path` needs, and the names ldd did not find."""
    done = subprocess.run(["ldd", path], capture_output=True, text=True, check=False)
    paths, missing = set(), set()
    for line in done.stdout.splitlines():
        matched = LDD_LINE.match(line)
        if matched and matched.group(2) == "not found":
            missing.add(matched.group(1))
        elif matched:
            paths.add(matched.group(2))
    return paths, missing


def owner(path: str) -> str | None:
    """The Debian package that ships `path` (merged /usr: dpkg may know it under either name)."""
    real = os.path.realpath(path)
    candidates = []
    for name in (path, real):
        alternate = name.removeprefix("/usr") if name.startswith("/usr/") else "/usr" + name
        candidates += [name, alternate]
    for candidate in dict.fromkeys(candidates):
        done = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True, check=False)
        if done.returncode == 0 and ":" in done.stdout:
            return done.stdout.split(":", 1)[0].split(",")[0].strip()
    return None  # the venv's own (a wheel's bundled .libs) or the base image's /usr/local


def runtime_libraries(venv: str, base_file: str, toolchain_packages: list[str]) -> int:
    with open(base_file, encoding="utf-8") as handle:
        base = {line.strip() for line in handle if line.strip()}
    libraries, missing = _linked(venv)
    if missing and toolchain_packages:
        # a module built elsewhere (pip's wheel cache) whose library this builder never installed:
        # the toolchain's -dev packages bring the common ones (libpq5, libffi, libssl), then look again
        print(f"stackctl: {' '.join(sorted(missing))} not installed here; installing the toolchain", file=sys.stderr)
        if toolchain(toolchain_packages) == 0:
            libraries, missing = _linked(venv)
    for name in sorted(missing):
        print(
            f"stackctl: warning: {missing[name]} needs {name}, which no package installed here provides: "
            "add the Debian package that has it to RUNTIME_PACKAGES (and its -dev to BUILD_PACKAGES)",
            file=sys.stderr,
        )
    packages = {owner(lib) for lib in libraries} - {None} - base
    # psycopg 3 without its binary or C build loads libpq at run time (ctypes): ldd cannot see it
    if installed("psycopg") and not (installed("psycopg-binary") or installed("psycopg-c")):
        packages |= {LIBPQ} - base
    needed = sorted(p for p in packages if p is not None and not p.endswith("-dev"))
    if needed:
        print(f"stackctl: the final image installs {' '.join(needed)} (libraries the venv links to)", file=sys.stderr)
    for package in needed:
        print(package)
    return 0


def _linked(venv: str) -> tuple[set[str], dict[str, str]]:
    """The system libraries the venv's compiled modules link to, and those not found (name: a module)."""
    libraries: set[str] = set()
    missing: dict[str, str] = {}
    for path in shared_objects(venv):
        paths, absent = linked_libraries(path)
        missing.update({name: path for name in absent})
        libraries |= {lib for lib in paths if not lib.startswith(venv.rstrip("/") + "/")}
    return libraries, missing


def toolchain(packages: list[str]) -> int:
    import sysconfig

    headers = os.path.join(str(sysconfig.get_config_var("INCLUDEPY")), "Python.h")
    if not os.path.exists(headers):
        packages = [*packages, "python{}.{}-dev".format(*sys.version_info[:2])]
    print(f"stackctl: installing {' '.join(packages)}", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
        done = subprocess.run(command, check=False, env=env, stdout=sys.stderr)
        if done.returncode:
            return done.returncode
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "pep621":
        return pep621(argv[1])
    if argv and argv[0] == "add-missing":
        return add_missing(argv[1:])
    if argv and argv[0] == "toolchain":
        return toolchain(argv[1:])
    if len(argv) >= 3 and argv[0] == "runtime-libraries":
        return runtime_libraries(argv[1], argv[2], argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
