# license-sync: one long-lived container next to the license servers.
#   docker build -t license-sync .
#   docker run -v $PWD/policy.yaml:/config/policy.yaml:ro -v license-sync-data:/data \
#     -v /opt/flexlm/lmutil:/opt/license-tools/lmutil:ro -p 9462:9462 license-sync

FROM python:3.11.10-slim-bookworm

# MALLOC_ARENA_MAX: reads run on a few threads a farm; glibc's arena per thread left
# ~10 MiB more resident at 10,000 jobs (benchmarks/farm_scale.py runs with this too)
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/license-tools:$PATH

# tini as PID 1: SIGTERM reaches license-sync, and the lmutil/rlmutil children a hung
# server leaves behind are reaped. Its version is the Debian release's (the base tag).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

# vendor lmutil/rlmutil builds are linked against the LSB loader, which Debian does not
# ship: its path names the glibc loader the image has (x86-64; other arches have none)
RUN if [ -e /lib64/ld-linux-x86-64.so.2 ]; then \
      ln -sf /lib64/ld-linux-x86-64.so.2 /lib64/ld-lsb-x86-64.so.3; fi

RUN groupadd --system --gid 10001 licsync \
 && useradd --system --uid 10001 --gid licsync --home-dir /data --shell /usr/sbin/nologin licsync \
 && mkdir -p /data /config /opt/license-tools \
 && chown licsync:licsync /data

# the dependencies, pinned and hashed, in a layer of their own: a code change does not
# download them again
WORKDIR /src
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY sync ./sync
RUN pip install --no-cache-dir --no-deps . && rm -rf /src && pip check && license-sync --version

# lmutil / rlmutil are vendor binaries: mount them into /opt/license-tools (on PATH).
VOLUME ["/data"]
USER 10001:10001
WORKDIR /data
EXPOSE 9462

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["license-sync", "healthcheck", "--config", "/config/policy.yaml"]

ENTRYPOINT ["tini", "--", "license-sync", "run", "--config", "/config/policy.yaml"]
