# Accord server image: `docker build -t accord .` then
#   docker run -p 1234:1234 -v accord-data:/data -e ACCORD_AUTH_SECRET=... accord
# Settings are `accord serve` flags or ACCORD_* environment variables (docs/configuration.md).

# Build stage: dev dependencies and the TypeScript compiler, output in dist/.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are copied.
RUN npm ci --ignore-scripts
COPY tsconfig.base.json tsconfig.browser.json tsconfig.build.json tsconfig.node.json ./
COPY src ./src
COPY server ./server
RUN npm run build

# Runtime stage: production dependencies, the compiled code and the command, nothing else.
FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# pg and ioredis are optional peers: installed here so one image also serves the cluster setup.
RUN npm ci --omit=dev --ignore-scripts \
  && npm install --omit=dev --ignore-scripts --no-save pg@8.23.1 ioredis@6.0.0 \
  && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY LICENSE README.md ./
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 1234
# In a container the server must listen on every interface, which Accord allows only with auth
# (ACCORD_AUTH_SECRET or ACCORD_AUTH_PUBLIC_KEY_FILE): without it, it refuses to start.
ENV ACCORD_HOST=0.0.0.0 ACCORD_PORT=1234 ACCORD_DATA=/data
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.ACCORD_PORT || 1234) + '/readyz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/accord.js"]
CMD ["serve"]
