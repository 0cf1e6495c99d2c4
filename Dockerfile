# syntax=docker/dockerfile:1
# aftercall worker image: `node bin/aftercall.js worker` by default; the same image runs
# the other commands (`serve` for the HTTP API, `sandbox`, `enqueue`, `dlq`, `status`,
# `sweep`, `ingest`) with another command.

# ---- build: compile src/ to dist/ --------------------------------------------------------
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
# --ignore-scripts: no lifecycle scripts during the install (the `prepare` script would run
# the build before we ask for it, and msgpackr-extract's native build is denied anyway:
# msgpackr falls back to JavaScript); the build then runs once, explicitly.
RUN npm ci --no-audit --no-fund --ignore-scripts \
 && npm run build

# ---- runtime: production dependencies and the compiled code only -------------------------
FROM node:20-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would try to rebuild dist/ without TypeScript; dist/ comes
# from the build stage instead.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY schema ./schema
# The example outcomes, for `node bin/aftercall.js enqueue --shift-to-now examples/booked.json`.
COPY examples ./examples

# Files stay owned by root (read-only for the process); the process runs as the image's
# unprivileged `node` user (uid 1000).
USER node

# Prometheus metrics, /healthz and /readyz (METRICS_PORT, default 9464).
EXPOSE 9464
# The HTTP API of `serve` (HTTP_PORT, default 8080), with its own /metrics, /healthz and
# /readyz; its container overrides the health check below to probe this port.
EXPOSE 8080

# On SIGTERM the worker stops taking jobs and lets active ones finish within SHUTDOWN_GRACE
# (25 s): give it longer than that before SIGKILL (docker compose: stop_grace_period 35s;
# Kubernetes: terminationGracePeriodSeconds >= 35).
STOPSIGNAL SIGTERM

# No curl in the slim image: Node's fetch does the check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.METRICS_PORT || 9464) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

CMD ["node", "bin/aftercall.js", "worker"]
