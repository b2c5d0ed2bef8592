# syntax=docker/dockerfile:1
# Atelier: one Bun process per machine. Build: docker build -t atelier .

# --- deps: production dependencies only, exactly as bun.lock pins them ---
FROM oven/bun:1.4.5 AS deps
WORKDIR /app
COPY package.json bun.lock ./
# --ignore-scripts: the postinstall builds the embedded (PGlite) snapshot, which production does not use
RUN bun install --frozen-lockfile --production --ignore-scripts

# --- runtime: sources and production node_modules, no build tools, not root ---
FROM oven/bun:1.4.5 AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    PORT=3000 \
    HOST=0.0.0.0
COPY --from=deps /app/node_modules ./node_modules
COPY package.json bun.lock tsconfig.json ./
COPY sql ./sql
COPY src ./src
# the code stays root-owned and read-only to the app; only DATA_DIR is writable
RUN mkdir -p /app/data && chown bun:bun /app/data
USER bun
EXPOSE 3000
# liveness only (no dependency checks); fly.toml's check on /health/ready gates traffic.
# No curl in the image: Bun's fetch does the probe.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bun", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# exec form: bun is PID 1 with no shell in between, so SIGTERM reaches it and the drain runs
CMD ["bun", "src/server.ts"]
