#!/usr/bin/env bash
# Render the demo's tutorial videos: a moving test pattern (with its own clock)
# of each tutorial's length, 160x90, VP9 at a few kbit/s, so the repository can
# hold them and the watch page really plays. Needs Debian's ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
out=demo/static/demo/videos
mkdir -p "$out"
PY=${PY:-.venv/bin/python}
"$PY" -c 'from demo.catalogue import all_videos
for name, seconds in all_videos(): print(name, seconds)' | while read -r name seconds; do
  [ -f "$out/$name" ] && continue
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc=size=160x90:rate=4" -t "$seconds" \
    -c:v libvpx-vp9 -b:v 6k -deadline realtime -cpu-used 8 -an "$out/$name" </dev/null
  echo "rendered $out/$name ($seconds s)"
done
