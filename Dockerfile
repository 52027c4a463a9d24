# lvqr-transcode service image: Node 20 (20.19 or newer), production dependencies only.
# The WebCodecs addon ships a static FFmpeg+x264 as an optional dependency: never --omit=optional.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY src ./src
COPY bin ./bin
EXPOSE 8080
USER node
ENTRYPOINT ["node", "bin/lvqr-transcode.mjs"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
