# syntax=docker/dockerfile:1
# One image for every Studyhall process. The argument picks the process:
#   docker run IMAGE services.members serve        (the default)
#   docker run IMAGE services.members relay
#   docker run IMAGE services.analytics consume
# i.e. `python -m services.<service> [serve|relay|consume]`, as README.md describes.
#
# The base image is pinned by tag here and in deploy/compose/.env (PYTHON_IMAGE); pass
# --build-arg PYTHON_IMAGE=... to change both stages at once.
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm

# ---- build: install the project and its pinned dependencies into a venv -------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/venv

# Every dependency is a wheel for CPython 3.11 on manylinux, so no compiler is needed here.
# pip compiles the installed modules to .pyc in the venv, so the runtime, which never
# writes bytecode, still starts from compiled files.
# requirements.lock pins every runtime package with its sha256 hashes (make lock): a file
# that does not match is refused, and the project itself adds nothing unpinned.
COPY pyproject.toml requirements.lock README.md ./
COPY gen/ gen/
COPY services/ services/
RUN /opt/venv/bin/pip install --require-hashes -r requirements.lock \
    && /opt/venv/bin/pip install --no-deps .

# ---- runtime: the venv and the health/migration scripts, run as uid 10001 -----------------
FROM ${PYTHON_IMAGE} AS runtime

# Data directory: the local signing key in Compose (a volume); SQLite files only when no
# database URL is set. Nothing else is written: the root filesystem can be read-only, with
# /tmp as the only other writable place.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STUDYHALL_DATA_DIR=/var/lib/studyhall

RUN groupadd --system --gid 10001 studyhall \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin studyhall \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/studyhall /var/lib/studyhall/keys

COPY --from=build /opt/venv /opt/venv
COPY deploy/healthcheck.py deploy/migrate.py /app/deploy/

WORKDIR /app
USER 10001:10001

# gRPC and Prometheus ports of members, content, events, billing, analytics.
EXPOSE 50051 50052 50053 50054 50055 9451 9452 9453 9454 9455

ENTRYPOINT ["python", "-m"]
CMD ["services.members", "serve"]
