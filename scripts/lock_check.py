"""Checks, without the network, that the pins follow pyproject.toml (make lock writes them):
every declared package is pinned in constraints.txt, every runtime one in requirements.lock
with hashes, and both files pin the same versions."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        found = _PIN.match(line)
        if found:
            pins[_key(found[1])] = found[2]
    return pins


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_key(_NAME.match(d)[1]) for d in project["dependencies"]}  # type: ignore[index]
    extras = {
        _key(_NAME.match(d)[1])  # type: ignore[index]
        for group in project["optional-dependencies"].values()
        for d in group
    } - {_key(project["name"])}
    constraints = _pins(ROOT / "constraints.txt")
    lock = _pins(ROOT / "requirements.lock")
    hashed = (ROOT / "requirements.lock").read_text().count("==")
    problems = [
        f"{n} is declared but not pinned in constraints.txt"
        for n in sorted((runtime | extras) - constraints.keys())
    ]
    problems += [
        f"{n} is a runtime package missing from requirements.lock"
        for n in sorted(runtime - lock.keys())
    ]
    problems += [
        f"{n}: requirements.lock pins {v}, constraints.txt {constraints.get(n)}"
        for n, v in sorted(lock.items())
        if constraints.get(n) != v
    ]
    if "--hash=sha256:" not in (ROOT / "requirements.lock").read_text() or hashed != len(lock):
        problems.append("requirements.lock must pin every package with its hashes")
    for problem in problems:
        print(f"lock-check: {problem}; run make lock", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
