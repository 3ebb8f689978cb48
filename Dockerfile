# syntax=docker/dockerfile:1
# The zeroloop stage image: every stage (`zeroloop selfplay`, `shuffle-export-loop`,
# `train`, `gatekeeper`, `export`, `loop`, ...) and the GTP engine, with GNU Go for
# matches and the ladder. The TrainingRun operator runs these pods.
#
#   CPU (default):  docker build -t zeroloop:0.1.0 .
#   CUDA:           docker build -t zeroloop:0.1.0-cuda \
#                     --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 \
#                     --build-arg TORCH_INDEX_URL=https://pypi.org/simple .
#
# The install steps are the README's: `pip install torch==2.13.0`, then the
# package (PyPI's torch wheels for Linux are CUDA builds; the CPU build comes from
# PyTorch's CPU index). The final image has no compilers or headers and no pip in
# its environment, runs as user 10001, and keeps every writable path under
# /scratch (mount an emptyDir there; the operator does) and /data (the run's volume).

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS base
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Python >= 3.11 from the base image where it has one (python:*), else from the OS
# (CUDA bases are Ubuntu 24.04: Python 3.12); GNU Go for `zeroloop match` and `ladder`.
RUN set -eux; \
    packages="gnugo"; \
    if ! python3 -c 'import sys, venv; assert sys.version_info >= (3, 11)' 2>/dev/null; then \
        packages="$packages python3 python3-venv"; \
    fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends $packages; \
    rm -rf /var/lib/apt/lists/*

FROM base AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
RUN python3 -m venv /opt/zeroloop
ENV PATH=/opt/zeroloop/bin:$PATH
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stages ./stages
COPY operator ./operator
RUN pip install --no-cache-dir . \
    && python -m compileall -q /opt/zeroloop/lib \
    && pip uninstall -y pip setuptools wheel

FROM base
COPY --from=build /opt/zeroloop /opt/zeroloop
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /scratch --shell /usr/sbin/nologin zeroloop \
    && mkdir -p /scratch /data \
    && chown 10001:10001 /scratch /data
# Caches and temporary files go to /scratch (an emptyDir under a read-only root
# filesystem), so numba and torch-inductor compile once per pod, not per process.
ENV PATH=/opt/zeroloop/bin:/usr/games:$PATH \
    HOME=/scratch \
    TMPDIR=/scratch \
    NUMBA_CACHE_DIR=/scratch/numba \
    TORCHINDUCTOR_CACHE_DIR=/scratch/torchinductor \
    TRITON_CACHE_DIR=/scratch/triton \
    MPLCONFIGDIR=/scratch/matplotlib \
    XDG_CACHE_HOME=/scratch/cache
USER 10001:10001
WORKDIR /scratch
ENTRYPOINT ["zeroloop"]
CMD ["--help"]
