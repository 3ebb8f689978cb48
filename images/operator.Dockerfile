# syntax=docker/dockerfile:1
# The zeroloop operator image: `zeroloop operator` (kopf) and nothing of the
# stages' heavy stack (no torch, numpy or numba: the operator imports none of them).
#
#   docker build -f images/operator.Dockerfile -t zeroloop-operator:0.1.0 .
#
# The package is installed without its dependencies, then the few the operator
# imports (a test checks this list against the operator's imports).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/zeroloop
ENV PATH=/opt/zeroloop/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stages ./stages
COPY operator ./operator
RUN pip install --no-cache-dir --no-deps . \
    && pip install --no-cache-dir "kopf>=1.37" "kubernetes>=29" "prometheus-client>=0.20" "pyyaml>=6.0" \
    && python -m compileall -q /opt/zeroloop/lib \
    && pip uninstall -y pip setuptools wheel

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/zeroloop /opt/zeroloop
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin zeroloop
ENV PATH=/opt/zeroloop/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
ENTRYPOINT ["zeroloop"]
CMD ["operator"]
