"""The image's install, replayed without Docker: the build stage's COPY and RUN steps run
into a fresh venv outside the source tree, then every entry point the image offers is
started from that venv and must become healthy and stop cleanly.

What this catches that the other tests cannot: a file the package needs but does not ship
(a migration template, a generated module), a dependency missing from pyproject.toml, an
entry point that only works from a checkout.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.kit.auth import LocalSigner
from tests.support.services import free_port

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("members", "content", "events", "billing", "analytics")


@dataclass
class Step:
    kind: str  # COPY or RUN
    args: str


@dataclass
class Stage:
    name: str
    env: dict[str, str]
    workdir: str
    steps: list[Step]


def dockerfile_stages(path: Path) -> dict[str, Stage]:
    """The stages of a Dockerfile with their ENV, WORKDIR, COPY and RUN steps, in order."""
    text = path.read_text().replace("\\\n", " ")
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            name = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
            current = Stage(name=name, env={}, workdir="/", steps=[])
            stages[name] = current
        elif current is None:
            continue
        elif instruction == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                current.env[key] = value
        elif instruction == "WORKDIR":
            current.workdir = rest.strip()
        elif instruction in ("COPY", "RUN"):
            current.steps.append(Step(instruction, rest.strip()))
    return stages


def build_context(destination: Path) -> None:
    """The files the build context allows (.dockerignore is an allow-list here)."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", ".dockerignore is expected to start by excluding everything"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    excluded = [p for p in patterns[1:] if not p.startswith("!")]
    for entry in allowed:
        source = ROOT / entry
        target = destination / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(
                source,
                target,
                ignore=lambda _dir, names: [
                    n for n in names if any(fnmatch.fnmatch(n, p.split("/")[-1]) for p in excluded)
                ],
            )
        else:
            shutil.copy2(source, target)


def replay_build(stage: Stage, context: Path, root: Path) -> None:
    """Run the stage's steps with `root` standing for the image's filesystem root."""
    workdir = root / stage.workdir.lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **stage.env}
    # The build runs without a pip cache; reusing the machine's changes only the download
    # time, not what gets installed (requirements.lock pins every version and hash).
    env.pop("PIP_NO_CACHE_DIR", None)
    env.pop("VIRTUAL_ENV", None)
    for step in stage.steps:
        if step.kind == "COPY":
            *sources, target = shlex.split(step.args)
            assert not any(s.startswith("--") for s in sources), step.args
            for source in sources:
                origin = context / source.rstrip("/")
                destination = workdir / target if not target.startswith("/") else root / target
                if origin.is_dir():
                    shutil.copytree(origin, destination, dirs_exist_ok=True)
                else:
                    destination.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, destination)
        else:
            command = step.args.replace("/opt/venv", str(root / "opt" / "venv"))
            # The image's `python` is CPython 3.11, like the interpreter running the tests.
            command = command.replace("python -m venv", f"{sys._base_executable} -m venv")  # type: ignore[attr-defined]
            result = subprocess.run(
                command, shell=True, cwd=workdir, env=env, capture_output=True, text=True
            )
            assert result.returncode == 0, f"RUN {step.args} failed:\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("image")
    context = work / "context"
    root = work / "root"
    build_context(context)
    stages = dockerfile_stages(ROOT / "Dockerfile")
    replay_build(stages["build"], context, root)
    runtime = stages["runtime"]
    for step in runtime.steps:
        if step.kind == "COPY" and step.args.startswith("deploy/"):
            *sources, target = shlex.split(step.args)
            for source in sources:
                (root / target.lstrip("/")).mkdir(parents=True, exist_ok=True)
                shutil.copy2(context / source, root / target.lstrip("/"))
    return root


def entry_points() -> list[tuple[str, str]]:
    """Every process the image runs: each service's API, and its relay or consumers."""
    points = []
    for service in SERVICES:
        spec = importlib.import_module(f"services.{service}.app").SPEC
        points.append((service, "serve"))
        if spec.outbox is not None:
            points.append((service, "relay"))
        if spec.subscriptions:
            points.append((service, "consume"))
    return points


def test_the_installed_image_runs_every_entry_point(
    image_root: Path, tmp_path: Path, nats_url: str, redis_url: str
) -> None:
    python = image_root / "opt" / "venv" / "bin" / "python"
    app = image_root / "app"
    data_dir = tmp_path / "data"
    LocalSigner.ensure(data_dir)
    # Nothing may be imported from the checkout: the process runs where the image runs it.
    base_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STUDYHALL_", "PYTHON", "VIRTUAL_ENV", "OTEL_"))
    }
    base_env.update(
        PYTHONDONTWRITEBYTECODE="1",
        STUDYHALL_DATA_DIR=str(data_dir),
        STUDYHALL_NATS_URL=nats_url,
        STUDYHALL_REDIS_URL=redis_url,
    )
    processes: list[tuple[str, int, subprocess.Popen[bytes], Path]] = []
    try:
        for service, mode in entry_points():
            port = free_port()
            env = {
                **base_env,
                f"STUDYHALL_{service.upper()}_GRPC_PORT": str(port),
                f"STUDYHALL_{service.upper()}_METRICS_PORT": str(free_port()),
            }
            log_path = tmp_path / f"{service}-{mode}.log"
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    [str(python), "-m", f"services.{service}", mode],
                    cwd=app,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            processes.append((f"{service} {mode}", port, process, log_path))

        for name, port, process, log_path in processes:
            healthy = _wait_healthy(python, app, port, process)
            assert healthy, f"{name} never became healthy:\n{log_path.read_text()[-3000:]}"

        cli = subprocess.run(
            [str(image_root / "opt" / "venv" / "bin" / "studyhall"), "--help"],
            cwd=app,
            env=base_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert "community" in cli.stdout

        for _name, _port, process, _log in processes:
            process.send_signal(signal.SIGTERM)
        for name, _port, process, log_path in processes:
            code = process.wait(timeout=30)
            assert code == 0, f"{name} exited with {code}:\n{log_path.read_text()[-3000:]}"
    finally:
        for _name, _port, process, _log in processes:
            if process.poll() is None:
                process.kill()


def _wait_healthy(python: Path, app: Path, port: int, process: subprocess.Popen[bytes]) -> bool:
    # The image's own health check script, run by the image's interpreter.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        check = subprocess.run(
            [str(python), "deploy/healthcheck.py", "grpc", f"127.0.0.1:{port}"],
            cwd=app,
            capture_output=True,
            text=True,
        )
        if check.returncode == 0:
            return True
        time.sleep(0.5)
    return False


def test_the_image_carries_no_local_only_binary(image_root: Path) -> None:
    # The embedded nats-server is the `local` extra's, for `studyhall up` and the tests.
    assert not (image_root / "opt" / "venv" / "bin" / "nats-server").exists()
