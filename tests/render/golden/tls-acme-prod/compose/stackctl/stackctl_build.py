"""Build-time helper of the web image's builder stage (stackctl, verbatim).

    python stackctl_build.py pep621 pyproject.toml
        print [project].dependencies, one requirement a line (pip -r reads them)
    python stackctl_build.py add-missing DIST[,DIST...]=REQUIREMENT ...
        pip-install each REQUIREMENT none of whose DISTs is installed in this interpreter,
        without changing any installed version (every one becomes a constraint)

Run with the venv's python: `importlib.metadata` then sees what the project's own install
put there, so a project's own pin of daphne or of a postgres driver always wins.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
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
    command = [sys.executable, "-m", "pip", "install", "--constraint", constraints.name, *missing]
    return subprocess.run(command, check=False).returncode


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "pep621":
        return pep621(argv[1])
    if argv and argv[0] == "add-missing":
        return add_missing(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
