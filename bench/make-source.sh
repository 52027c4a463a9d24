#!/usr/bin/env bash
# Makes the benchmark sources in bench/out/ (gitignored), idempotently:
#   source-1080p30.mp4  1920x1080 30 fps H.264 High, 20 s, 2 s GOP (no scene-cut keyframes), AAC,
#                       fragmented for ingest. Content: testsrc2 under temporal noise, so it is not
#                       trivially compressible.
#   source-720p30.mp4   the same at 1280x720, 70 s.
#   source-720p30-ll.mp4 1280x720 70 s, no B-frames, one fragment per frame (paced latency and memory runs).
#   source-720p30-gop.mp4 the same media in GOP-sized fragments (the latency run's second publisher).
# Usage: bench/make-source.sh [--smoke]   (--smoke: 2-6 s versions in out/smoke/ for the smoke runs)
set -euo pipefail
cd "$(dirname "$0")"
DIR=out; LONG=70; SHORT=20
if [ "${1:-}" = "--smoke" ]; then DIR=out/smoke; LONG=6; SHORT=2; fi
mkdir -p "$DIR"
make() {
  local name=$1 size=$2 seconds=$3 bitrate=$4
  if [ -s "$DIR/$name" ]; then return; fi
  ffmpeg -nostdin -y -v error \
    -f lavfi -i "testsrc2=size=${size}:rate=30,noise=alls=18:allf=t+u" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t "$seconds" -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -b:v "$bitrate" \
    -g 60 -keyint_min 60 -sc_threshold 0 -bf 2 \
    -c:a aac -b:a 128k -ac 2 -ar 48000 \
    -movflags frag_keyframe+empty_moov+default_base_moof -f mp4 "$DIR/$name.part"
  mv "$DIR/$name.part" "$DIR/$name"
}
make source-1080p30.mp4 1920x1080 "$SHORT" 8M
make source-720p30.mp4 1280x720 "$LONG" 4M
# Low-latency publisher shape (as OBS/ffmpeg low-latency presets send): no B-frames, one fragment per frame.
if [ ! -s "$DIR/source-720p30-ll.mp4" ]; then
  ffmpeg -nostdin -y -v error \
    -f lavfi -i "testsrc2=size=1280x720:rate=30,noise=alls=18:allf=t+u" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t "$LONG" -c:v libx264 -preset veryfast -tune zerolatency -profile:v high -pix_fmt yuv420p -b:v 4M \
    -g 60 -keyint_min 60 -sc_threshold 0 -bf 0 -c:a aac -b:a 128k -ac 2 -ar 48000 \
    -movflags frag_every_frame+empty_moov+default_base_moof -f mp4 "$DIR/source-720p30-ll.mp4.part"
  mv "$DIR/source-720p30-ll.mp4.part" "$DIR/source-720p30-ll.mp4"
fi
# The same media as a publisher with GOP-sized fragments sends it (ffmpeg's default for fragmented MP4).
if [ ! -s "$DIR/source-720p30-gop.mp4" ]; then
  ffmpeg -nostdin -y -v error -i "$DIR/source-720p30-ll.mp4" -c copy \
    -movflags frag_keyframe+empty_moov+default_base_moof -f mp4 "$DIR/source-720p30-gop.mp4.part"
  mv "$DIR/source-720p30-gop.mp4.part" "$DIR/source-720p30-gop.mp4"
fi
ls -la "$DIR"/source-*.mp4
