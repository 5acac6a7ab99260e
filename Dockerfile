# The IdP image; docker-compose.yml also runs the demo apps from it.
# Slim Python, the same pinned install as `make` (constraints.txt), a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/idp --create-home idp \
    && mkdir -p /var/lib/idp/keys /var/lib/idp/instance /var/lib/idp/demo \
    && chown -R idp:idp /var/lib/idp \
    && chmod 0700 /var/lib/idp/keys /var/lib/idp/instance

# Dependencies first (a layer that changes only with pyproject.toml or constraints.txt).
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY idp ./idp
RUN python -m pip install --upgrade pip \
    && python -m pip install -c constraints.txt '.[demo]'
COPY relying_party_demo ./relying_party_demo
# The demo apps' Flask instance folder.
RUN mkdir -p /app/instance && chown idp:idp /app/instance

USER idp
ENV IDP_KEYS_DIR=/var/lib/idp/keys/ \
    IDP_INSTANCE_DIR=/var/lib/idp/instance/ \
    IDP_LOG_FORMAT=json
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=2)"]
CMD ["idp", "serve", "--host", "0.0.0.0", "--port", "5000"]
