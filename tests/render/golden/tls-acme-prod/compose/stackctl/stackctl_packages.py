"""Print the distributions installed in the web image as one JSON line (stackctl, verbatim).

`python /opt/stackctl/stackctl_packages.py` in a container of a web image prints
{"packages": {name: version}}, names normalised as PEP 503 says (lower case, runs of
"-", "_" and "." as one "-"), so that two images' listings compare name by name.
stackctl's handoff notes hold the running image's listing against the new one's.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(normalise(name), dist.version)  # the first on sys.path wins, as for import
    return dict(sorted(found.items()))


if __name__ == "__main__":
    sys.stdout.write(json.dumps({"packages": installed()}, sort_keys=True) + "\n")
