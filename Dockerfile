# txproxy: build with the full toolchain, run on a slim image as a non-root user.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bench ./bench
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config ./config
COPY docs ./docs
COPY docker/entrypoint.sh ./docker/entrypoint.sh
USER node
# Clients connect on 6432; metrics and the admin API on 9930.
EXPOSE 6432 9930
# In a container, clients connect on all interfaces; point TXPROXY_UPSTREAM at your server.
ENV TXPROXY_LISTEN=0.0.0.0:6432
# The admin API (sessions, SQL text, live trace) is served on all interfaces
# only with a token: set TXPROXY_ADMIN_TOKEN or TXPROXY_ADMIN_TOKEN_FILE (a
# mounted secret). Without one it stays on the container's loopback, unless
# TXPROXY_HTTP says otherwise (docs/admin-api.md).
ENTRYPOINT ["/bin/sh", "/app/docker/entrypoint.sh"]
