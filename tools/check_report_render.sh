#!/bin/sh
# check_report_render.sh: renders `rosa report` and `rosa analyze` pages in headless
# Chromium and checks that they show something.
#
#   tools/check_report_render.sh                        (CI: a fresh short RoSA run)
#   tools/check_report_render.sh REPORT.html [MIN_SVG] [SCREENSHOT.png]
#
# Without arguments it trains stories260K for 12 steps with RoSA (DLS every 2 steps)
# into a temporary directory with $ROSA_BIN (default build/rosa) and the shared data
# in $ROSA_SHARED (default ../shared), writes its report and an analysis page, and
# checks both; about 10 seconds.  For each page: tools/check_report_html.py (proper
# nesting, every inline SVG well-formed XML, no script, no external resource, at
# least MIN_SVG charts), then a headless Chromium screenshot (1280 x 2000, no network,
# throw-away profile) that must not be blank.  Installs Debian's chromium with
# apt-get when it is missing.  Exit 0 when every page renders, 1 otherwise.
set -eu
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if ! command -v chromium >/dev/null 2>&1; then
    echo "check_report_render: installing chromium (Debian package)" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

check_one() {
HTML=$1
MIN_SVG=$2
PNG=${3:-}
[ -f "$HTML" ] || { echo "check_report_render: $HTML: no such file" >&2; return 1; }
"$PY" "$HERE/check_report_html.py" "$HTML" --expect-svg "$MIN_SVG"

[ -n "$PNG" ] || PNG=$TMP/shot.png
rm -f "$PNG"
rm -rf "$TMP/profile"
ABS=$(cd "$(dirname "$HTML")" && pwd)/$(basename "$HTML")
# No network, no GPU, a throw-away profile; a few seconds at most.
timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$TMP/profile" \
    --screenshot="$PNG" --window-size=1280,2000 "file://$ABS" >"$TMP/chromium.log" 2>&1 || {
    echo "check_report_render: chromium failed:" >&2
    tail -5 "$TMP/chromium.log" >&2
    return 1
}
[ -s "$PNG" ] || { echo "check_report_render: chromium wrote no screenshot" >&2; tail -5 "$TMP/chromium.log" >&2; return 1; }

# Not blank: inflate the PNG's image data (zlib) and count the rows that carry
# detail.  PNG stores each row filtered against its neighbours (Sub, Up, Avg,
# Paeth), so a row of one flat colour under a flat row above filters to zeros
# (but for its first pixel); a row with text, lines or edges does not.  A blank
# or single-colour page has almost no such rows; a report has them on most rows.
"$PY" - "$PNG" <<'EOF'
import struct, sys, zlib
path = sys.argv[1]
data = open(path, "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit("check_report_render: %s is not a PNG" % path)
pos, idat, w, h = 8, [], 0, 0
while pos + 8 <= len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat.append(body)
    pos += 12 + n
if w != 1280 or h < 500 or depth != 8 or ctype not in (2, 6) or interlace:
    sys.exit("check_report_render: unexpected PNG %dx%d depth %d colour type %d" % (w, h, depth, ctype))
bpp = 3 if ctype == 2 else 4
stride = w * bpp
raw = zlib.decompress(b"".join(idat))
if len(raw) != h * (stride + 1):
    sys.exit("check_report_render: truncated PNG data")
detail = 0
for y in range(1, h):
    row = raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)]
    if stride - row.count(0) > 4 * bpp:
        detail += 1
share = detail / (h - 1)
print("check_report_render: %dx%d screenshot, %.0f%% of its rows show detail" % (w, h, 100 * share))
if share < 0.2:
    sys.exit("check_report_render: the screenshot looks blank")
EOF
echo "check_report_render: $HTML renders"
}

if [ $# -gt 0 ]; then
    check_one "$1" "${2:-6}" "${3:-}"
    exit 0
fi

ROSA=${ROSA_BIN:-build/rosa}
SHARED=${ROSA_SHARED:-../shared}
MODEL=$SHARED/models/stories260K
DATA=$SHARED/data/llm-adapters/boolq/test.json
RUN=$TMP/run
"$ROSA" train --model "$MODEL" --data "$DATA" --output "$RUN" --method rosa --rank 4 --r-low 0.5 \
    --dls-interval 2 --dls-warmup 1 --max-steps 12 --batch-size 4 --micro-batch-size 4 --cutoff-len 96 \
    --lr 5e-3 --warmup-steps 2 --val-set-size 8 --eval-steps 4 --save-steps 12 --quiet
"$ROSA" report "$RUN" --output "$TMP/report.html"
"$ROSA" analyze --model "$MODEL" --data "$DATA" --adapter "$RUN" --limit 8 --cutoff-len 96 \
    --output "$TMP/analyze.html" --quiet >/dev/null
check_one "$TMP/report.html" 6
check_one "$TMP/analyze.html" 10
