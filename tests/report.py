"""The suite's closing lines, from the JUnit files of its pytest runs (scripts/test.sh):
the slowest tests of the whole suite (setup, call and teardown together) and one
`suite: N passed, N failed, N skipped` line.

    python -m tests.report .test-reports/*.xml
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

SLOWEST = 40


@dataclass(frozen=True)
class Case:
    name: str
    seconds: float
    outcome: str  # passed, failed, skipped


def cases(path: Path) -> list[Case]:
    found = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        if case.find("skipped") is not None:
            outcome = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        test = str(case.get("name")).split("@", 1)[0]  # a parallel run's node ids end in "@<group>"
        name = f"{case.get('classname', '').replace('.', '/')}.py::{test}"
        found.append(Case(name, float(case.get("time") or 0), outcome))
    return found


def main(argv: list[str]) -> int:
    every = [case for arg in argv if Path(arg).is_file() for case in cases(Path(arg))]
    if not every:
        return 0
    print(f"\n==> the {SLOWEST} slowest tests of the suite (setup + call + teardown, s)")
    for case in sorted(every, key=lambda c: -c.seconds)[:SLOWEST]:
        print(f"    {case.seconds:8.1f}  {case.name}")
    counts = {outcome: sum(c.outcome == outcome for c in every) for outcome in ("passed", "failed", "skipped")}
    print(f"suite: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
