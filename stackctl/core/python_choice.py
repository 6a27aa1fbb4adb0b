"""Which Python image a project gets: the hard bounds decide what may run it, the preferences
(runtime.txt, .python-version) and `init --python` decide among what may.

Hard bounds: requires-python, Poetry's python, Pipfile's python_version, and the Pythons the
installed Django supports. Preferences: the nearest allowed image wins (the same minor first,
then the closest; of two as close, the newer). Refused only when the bounds exclude every
image, or `--python` names one there is not: the message names the bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import Version

from stackctl.core.detect_python import PythonBound, PythonPreference, PythonRequirement
from stackctl.core.images import DEFAULT_SUITE, OFFICIAL_PYTHON_MINORS, SUITES, images_for
from stackctl.errors import StackctlError


@dataclass(frozen=True)
class PythonCandidate:
    """An image stackctl can give the web image: its Python ("3.13.5" for a local image, whose
    version is known; "3.13" for an official one, which follows the newest patch release)."""

    version: str
    image: str
    suite: str

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    def describe(self) -> str:
        return f"{self.version} ({self.image})"


@dataclass(frozen=True)
class PythonChoice:
    image: str
    suite: str
    version: str
    why: str  # one sentence: which file asked for what, what was chosen and why


def python_candidates(*, local: bool) -> list[PythonCandidate]:
    """The Python images on offer, in the order chosen when nothing else decides (newest first)."""
    if local:
        return [PythonCandidate(s.python, images_for(s.name).python.alias, s.name) for s in SUITES.values()]
    return [PythonCandidate(m, f"python:{m}-slim-{DEFAULT_SUITE}", DEFAULT_SUITE) for m in OFFICIAL_PYTHON_MINORS]


def choose_python(
    requirement: PythonRequirement,
    candidates: list[PythonCandidate],
    *,
    extra_bounds: tuple[PythonBound, ...] = (),
    explicit: str | None = None,
    kind: str = "local",
) -> PythonChoice:
    """The candidate every hard bound allows that is nearest to `explicit` (`init --python X.Y`),
    else to the preferences, else the first (newest). `kind` ("local", "official") names the
    images in messages."""
    bounds = (*requirement.bounds, *extra_bounds)
    allowed = [c for c in candidates if all(b.allows(c.version) for b in bounds)]
    if explicit is not None:
        return _explicit(explicit, candidates, allowed, bounds, kind)
    if not allowed:
        raise _refusal(f"no {kind} Python image satisfies the hard bounds", candidates, bounds, kind)
    preferences = requirement.preferences
    if not preferences:
        chosen = allowed[0]
        return PythonChoice(
            chosen.image, chosen.suite, chosen.version, f"Python {chosen.describe()}: {_newest(bounds)}"
        )
    chosen = min(allowed, key=lambda c: ([_distance(c.minor, p.minor) for p in preferences], -_minor_key(c)))
    return PythonChoice(chosen.image, chosen.suite, chosen.version, _why(chosen, preferences, candidates, allowed))


def _explicit(
    explicit: str,
    candidates: list[PythonCandidate],
    allowed: list[PythonCandidate],
    bounds: tuple[PythonBound, ...],
    kind: str,
) -> PythonChoice:
    if not re.fullmatch(r"\d+\.\d+(?:\.\d+)?", explicit.strip()):
        raise StackctlError(f"--python {explicit!r} is not a Python version", hint="give it as X.Y, e.g. --python 3.12")
    minor = ".".join(explicit.strip().split(".")[:2])
    matching = [c for c in candidates if c.minor == minor]
    if not matching:
        offered = ", ".join(c.describe() for c in candidates)
        hint = "choose one of them with --python X.Y"
        if kind == "local" and minor in OFFICIAL_PYTHON_MINORS:
            hint += f", or add --official-images (python:{minor}-slim) where a registry answers"
        raise StackctlError(
            f"--python {explicit}: there is no {kind} Python {minor} image; {kind} images: {offered}", hint=hint
        )
    ok = [c for c in matching if c in allowed]
    if not ok:
        raise _refusal(f"--python {explicit} is outside the hard bounds", matching, bounds, kind, allowed)
    chosen = ok[0]
    return PythonChoice(chosen.image, chosen.suite, chosen.version, f"Python {chosen.describe()}: --python {explicit}")


def _refusal(
    what: str,
    candidates: list[PythonCandidate],
    bounds: tuple[PythonBound, ...],
    kind: str,
    allowed: list[PythonCandidate] | None = None,
) -> StackctlError:
    """`what` refused, naming each hard bound that excludes one of `candidates`, with the way out."""
    excluding = [b for b in bounds if any(not b.allows(c.version) for c in candidates)]
    offered = ", ".join(c.describe() for c in candidates)
    named = "; ".join(b.describe() for b in excluding)
    if allowed:
        hint = "choose one the hard bounds allow: " + " or ".join(f"--python {c.minor}" for c in allowed)
    else:
        minors = ", ".join(sorted({c.minor for c in candidates}, key=Version))
        hint = "change " + " or ".join(_where(b) for b in excluding) + f" to allow Python {minors}"
        official = python_candidates(local=False)
        fits = [c.minor for c in official if all(b.allows(c.version) for b in bounds)]
        if kind == "local" and fits:
            hint += f", or use --official-images (python:{fits[0]}-slim) where a registry answers"
    return StackctlError(f"{what}: {named}. {kind.capitalize()} images: {offered}", hint=hint)


def _where(bound: PythonBound) -> str:
    return f"{bound.source} (another Django version)" if bound.states_range else bound.label


def _why(
    chosen: PythonCandidate,
    preferences: tuple[PythonPreference, ...],
    candidates: list[PythonCandidate],
    allowed: list[PythonCandidate],
) -> str:
    asked = ", ".join(f"{p.source} asks for {p.written}" for p in preferences)
    first = preferences[0]
    if chosen.minor == first.minor:
        reason = f"the same minor as {first.source}"
    elif any(c.minor == first.minor for c in candidates):
        reason = f"Python {first.minor} is outside the hard bounds; this is the nearest they allow"
    else:
        reason = f"there is no Python {first.minor} image here; this is the nearest the hard bounds allow"
        tied = [
            c
            for c in allowed
            if c != chosen and _distance(c.minor, first.minor) == _distance(chosen.minor, first.minor)
        ]
        if tied and len(preferences) == 1:
            reason += f" (as near as {tied[0].minor}: the newer wins)"
    if first.implementation == "pypy":
        reason += "; the images run CPython, not PyPy"
    return f"{asked}: Python {chosen.describe()}, {reason}"


def _newest(bounds: tuple[PythonBound, ...]) -> str:
    if not bounds:
        return "the newest image (the project names no Python)"
    return "the newest image within the hard bounds: " + "; ".join(b.describe() for b in bounds)


def _distance(minor: str, preferred: str) -> int:
    (a_major, a_minor), (b_major, b_minor) = _split(minor), _split(preferred)
    return abs(a_major - b_major) * 100 + abs(a_minor - b_minor)


def _split(minor: str) -> tuple[int, int]:
    parts = [int(p) for p in minor.split(".")[:2]] + [0]
    return parts[0], parts[1]


def _minor_key(candidate: PythonCandidate) -> int:
    major, minor = _split(candidate.minor)
    return major * 100 + minor
