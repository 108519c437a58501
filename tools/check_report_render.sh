#!/bin/sh
# check_report_render.sh: renders a `rosa report` (or `rosa analyze`) HTML file in
# headless Chromium and checks that it shows something: the screenshot is a PNG of
# the requested size that is not blank (enough non-background pixels), and the
# page itself passes tools/check_report_html.py (well-formed inline SVG, no script,
# no external resource, at least MIN_SVG charts).
#
#   tools/check_report_render.sh REPORT.html [MIN_SVG] [SCREENSHOT.png]
#
# Installs Debian's chromium with apt-get when it is missing.  Exit 0 when the
# page renders, 1 otherwise.
set -eu
HTML=${1:?usage: check_report_render.sh REPORT.html [MIN_SVG] [SCREENSHOT.png]}
MIN_SVG=${2:-6}
PNG=${3:-}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)

[ -f "$HTML" ] || { echo "check_report_render: $HTML: no such file" >&2; exit 1; }
if ! command -v chromium >/dev/null 2>&1; then
    echo "check_report_render: installing chromium (Debian package)" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

"$PY" "$HERE/check_report_html.py" "$HTML" --expect-svg "$MIN_SVG"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
[ -n "$PNG" ] || PNG=$TMP/shot.png
ABS=$(cd "$(dirname "$HTML")" && pwd)/$(basename "$HTML")
# No network, no GPU, a throw-away profile; a few seconds at most.
timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$TMP/profile" \
    --screenshot="$PNG" --window-size=1280,2000 "file://$ABS" >"$TMP/chromium.log" 2>&1 || {
    echo "check_report_render: chromium failed:" >&2
    tail -5 "$TMP/chromium.log" >&2
    exit 1
}
[ -s "$PNG" ] || { echo "check_report_render: chromium wrote no screenshot" >&2; tail -5 "$TMP/chromium.log" >&2; exit 1; }

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
