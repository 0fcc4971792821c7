# syntax=docker/dockerfile:1
# Dockerfile: every meshmart service image, one per SERVICE. Built from the repository root (skaffold context "."):
#   docker build --build-arg SERVICE=orders -t orders .                the runtime image (the last stage)
#   docker build --build-arg SERVICE=orders --target dev -t orders .   skaffold dev's image (tsx watch, file sync)
# What: `deps` installs the production dependencies only (npm ci --omit=dev); `build` installs everything and
#       compiles the service into one JavaScript file (npm run build -- $SERVICE: esbuild, tools/setup/build.ts); the
#       runtime stage is Node 22 slim without npm/yarn/corepack, holding those node_modules, package.json and
#       the compiled file as /app/main.js, nothing else: no TypeScript, no tsx, no tests, tools or secrets
#       (see .dockerignore). `dev` is the build stage run by tsx watch on the sources, for skaffold's file sync.
# Why:  one file instead of four near-copies (the services differ only in their name); compiled code starts
#       faster and idles in less memory than TypeScript through tsx. Layers go from least to most often
#       changed, and npm's download cache survives rebuilds (BuildKit cache mount).
# Verified offline by test/images.test.ts: this file set, installed with the same npm ci and built with the
# same command, starts every service and serves gRPC health. The image itself is never built here (no Docker).
# One catalog image serves both versions: the Deployment picks one with VERSION=v1|v2 (as Istio's helloworld does).
ARG SERVICE

FROM node:22-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no install script runs at build time; the runtime dependencies need none.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:22-bookworm-slim AS build
ARG SERVICE
RUN test -n "$SERVICE" || { echo "build with --build-arg SERVICE=identity|catalog|orders|payment" >&2; exit 1; }
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY tools/root.ts tools/
COPY tools/setup/build.ts tools/setup/entries.ts tools/setup/
# Sources belong to the node user so skaffold's file sync (dev stage) can replace them.
COPY --chown=node:node gen/ gen/
COPY --chown=node:node services/kit/src/ services/kit/src/
COPY --chown=node:node services/${SERVICE}/ services/${SERVICE}/
RUN npm run build -- ${SERVICE}

# skaffold dev (deploy/overlays/dev): the sources under tsx watch, which restarts the server when skaffold syncs
# an edited file; /app/main.ts imports the service's entry point so every service has the same command.
FROM build AS dev
ARG SERVICE
# In a pod a service listens on the pod's address (probes, sidecar); started by hand it defaults to 127.0.0.1.
ENV HOST=0.0.0.0
RUN echo "import \"./services/${SERVICE}/src/main.ts\";" > main.ts && chown node:node main.ts
USER node
EXPOSE 50051 9090
ENTRYPOINT ["node", "node_modules/tsx/dist/cli.mjs", "watch", "--clear-screen=false", "main.ts"]

FROM node:22-bookworm-slim
ARG SERVICE
# Package managers are build tools: the running service never needs them (less to patch, less to abuse).
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
WORKDIR /app
ENV NODE_ENV=production
ENV HOST=0.0.0.0
COPY --from=deps /app/node_modules ./node_modules
# package.json: "type": "module" makes main.js an ES module.
COPY package.json ./
COPY --from=build /app/dist/${SERVICE}.js ./main.js
USER node
# 50051 gRPC, 9090 admin HTTP (/metrics, /healthz, /readyz, /faults; identity also /.well-known/jwks.json).
EXPOSE 50051 9090
# The V8 flags of tools/setup/entries.ts SERVICE_NODE_FLAGS (why: there); test/images.test.ts keeps them the same.
ENTRYPOINT ["node", "--max-semi-space-size=2", "--heap-growing-percent=30", "main.js"]
