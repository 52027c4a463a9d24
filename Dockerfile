# lvqr-transcode service image: Node 20 (20.19 or newer), production dependencies only.
# The WebCodecs addon ships a static FFmpeg+x264 as an optional dependency: never --omit=optional.
# `npm install`, not `npm ci`: package-lock.json lists the addon's binary for linux-x64 only, and
# `npm ci` refuses a lockfile that lacks any platform's optional package. `npm install` keeps every
# version the lockfile pins and fetches the build platform's binary at the version the addon pins.
# test/e2e/image.test.ts replays this file (COPY, RUN, ENTRYPOINT + CMD) without a container engine.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# glibc: every block of 128 KiB or more (a decoded or scaled frame) gets its own mapping, given back
# to the system when freed. Without it, frame buffers freed by the codec threads stay in malloc's
# arenas and RSS climbs under overload (a 15-minute soak: +39 % without, +5.7 % with; about 4 %
# more CPU; bench/RESULTS.md, "Memory under overload").
ENV MALLOC_MMAP_THRESHOLD_=131072
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund
COPY src ./src
COPY bin ./bin
# Compiles the service to JavaScript now: the runtime user may not write node_modules/.cache.
RUN node bin/lvqr-transcode.mjs compile
EXPOSE 8080
USER node
ENTRYPOINT ["node", "bin/lvqr-transcode.mjs"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
