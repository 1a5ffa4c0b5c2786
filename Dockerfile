# The reconciler daemon: slim Python, non-root, kustomize inside, healthcheck on /healthz.
# Build: docker build -t healthflow-reconciler .

# kustomize built from source through the Go module proxy (no prebuilt binary downloads).
# helm (Helm charts through kustomize), sops (encrypted Secrets) and kustomize-worker (the same kustomize's
# build in a long-lived process) are built from the pinned wrapper modules in devcluster/gotools, the
# same pins `make build` uses.
FROM golang:1.26-bookworm AS kustomize
ARG KUSTOMIZE_VERSION=v5.5.0
RUN CGO_ENABLED=0 GOBIN=/out go install sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}
COPY devcluster/gotools /gotools
RUN cd /gotools/helm && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/helm helm.sh/helm/v3/cmd/helm \
 && cd /gotools/sops && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/sops github.com/getsops/sops/v3/cmd/sops \
 && cd /gotools/kustomize-worker && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/kustomize-worker .

# The status page's front-end packages, pinned by ui/package-lock.json (what `make ui` installs).
FROM node:22-bookworm-slim AS ui
COPY ui/package.json ui/package-lock.json /ui/
RUN cd /ui && npm ci --ignore-scripts --no-audit --no-fund

FROM python:3.12-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates gnupg \
 && rm -rf /var/lib/apt/lists/*
COPY --from=kustomize /out/kustomize /out/kustomize-worker /out/helm /out/sops /usr/local/bin/

RUN groupadd --system --gid 10001 reconciler \
 && useradd --system --uid 10001 --gid reconciler --home-dir /home/reconciler --create-home reconciler \
 && install -d -o 10001 -g 10001 /var/cache/reconciler
WORKDIR /app
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
COPY --from=ui /ui/node_modules/diff2html/bundles/js/diff2html.min.js /ui/node_modules/diff2html/bundles/css/diff2html.min.css \
     ./reconciler/daemon/static/vendor/
COPY devcluster ./devcluster
RUN pip install --no-cache-dir . && rm -rf /root/.cache

USER 10001:10001
# The container listens on all interfaces, so the daemon needs RECONCILER_READ_TOKEN (or _FILE; deploy/
# mounts one) to serve status and drift, or RECONCILER_INSECURE_READ=true to serve them to anyone.
ENV PYTHONUNBUFFERED=1 \
    RECONCILER_LISTEN=0.0.0.0:8080 \
    RECONCILER_CACHE_DIR=/var/cache/reconciler \
    RECONCILER_ENVIRONMENTS=/etc/reconciler/environments \
    RECONCILER_LOG_FORMAT=json \
    HOME=/home/reconciler
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["reconciler"]
CMD ["run"]
