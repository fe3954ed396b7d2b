# One image for every castlog process; the command picks which one runs, e.g.
#   docker run castlog apps/api/main.ts      (api: 8080)      apps/fanout/main.ts    (fanout: 8081)
#   apps/projector/main.ts (8082)  apps/relay/main.ts (8083)  apps/worker/main.ts    (8084)
#   apps/matcher/main.ts   (8085)  apps/notifier/main.ts (8086)  bin/castlog.mjs <cli command>
# TypeScript runs through tsx, as with npm start: there is no compile step to drift from the source.

# 1. Every dependency, and the type check: a tree that does not type-check builds no image.
FROM node:20-bookworm-slim AS check
WORKDIR /src
COPY package.json package-lock.json ./
COPY patches patches
# --ignore-scripts: the lint tools' postinstall and native builds are not wanted (uWebSockets.js ships
# binaries); our patches to dependencies (patches/) are applied on their own.
RUN npm ci --ignore-scripts --no-audit --no-fund && npx patch-package --error-on-fail
COPY tsconfig.json vitest.config.ts ./
COPY apps apps
COPY bin bin
COPY domain domain
COPY infra infra
COPY projections projections
COPY schemas schemas
COPY test test
RUN npx tsc --noEmit

# 2. Production dependencies only.
FROM node:20-bookworm-slim AS deps
WORKDIR /src
COPY package.json package-lock.json ./
COPY patches patches
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npx patch-package --error-on-fail

# 3. The image: Node, ffmpeg (the encode worker), tini (signals reach Node; zombies are reaped),
# the production dependencies and the source. No npm, no compiler, no package caches.
FROM node:20-bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
  && apt-get install -y --no-install-recommends ffmpeg tini \
  && rm -rf /var/lib/apt/lists/* \
  && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
    /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /opt/yarn-* /usr/local/bin/yarn /usr/local/bin/yarnpkg \
  && mkdir -p /var/lib/castlog/blobs \
  && chown -R node:node /var/lib/castlog
WORKDIR /app
ENV NODE_ENV=production \
    BLOB_DIR=/var/lib/castlog/blobs \
    LOG_LEVEL=info
COPY --from=deps /src/node_modules node_modules
COPY --from=check /src/package.json /src/tsconfig.json ./
COPY --from=check /src/apps apps
COPY --from=check /src/bin bin
COPY --from=check /src/domain domain
COPY --from=check /src/infra infra
COPY --from=check /src/projections projections
COPY --from=check /src/schemas schemas
# The uid of the image's `node` user: not root, and a number Kubernetes can check (runAsNonRoot).
USER 1000:1000
EXPOSE 8080 8081 8082 8083 8084 8085 8086
# node runs an app with the flags apps/node-args.ts gives (deploy-manifests.test.ts compares them).
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--max-semi-space-size=64", "--import", "tsx"]
CMD ["apps/api/main.ts"]
