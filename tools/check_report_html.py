#!/usr/bin/python3
"""Structural check of an HTML page written by `rosa report` or `rosa analyze`.

    check_report_html.py FILE.html [--expect-svg N]

Checks, with the standard library only:
  * the HTML nests properly (every non-void element closed, in order) and has no <script>,
    no event-handler attribute (on...=) and no external resource (src/href to http(s) or //);
  * every inline <svg>...</svg> is well-formed XML (so each chart renders on its own);
  * with --expect-svg N, at least N SVG charts.
Prints one JSON line of counts ({"svg": n, "rect": ..., "polyline": ..., "path": ..., "text": ...})
and exits 0, or prints the first problem and exits 1.
"""

import argparse
import html.parser
import json
import re
import sys
import xml.etree.ElementTree as ET

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Checker(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.problem = None
        self.in_svg = 0

    def fail(self, msg):
        if self.problem is None:
            self.problem = "line %d: %s" % (self.getpos()[0], msg)

    def handle_starttag(self, tag, attrs):
        self._attrs(tag, attrs)
        if tag == "script":
            self.fail("<script> element")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self._attrs(tag, attrs)
        if tag == "script":
            self.fail("<script> element")

    def _attrs(self, tag, attrs):
        for k, v in attrs:
            if k.startswith("on"):
                self.fail("event handler attribute %s on <%s>" % (k, tag))
            if k in ("src", "href") and v and re.match(r"^\s*(https?:)?//", v):
                self.fail("external resource %s=%r" % (k, v))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.fail("</%s> closes <%s>" % (tag, self.stack[-1] if self.stack else "nothing"))
            return
        self.stack.pop()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--expect-svg", type=int, default=0)
    a = ap.parse_args(argv)
    with open(a.file, encoding="utf-8") as f:
        text = f.read()
    c = Checker()
    c.feed(text)
    c.close()
    if c.problem is None and c.stack:
        c.problem = "unclosed elements at the end: %s" % c.stack
    if c.problem:
        print("%s: %s" % (a.file, c.problem))
        return 1
    svgs = re.findall(r"<svg\b.*?</svg>", text, flags=re.S)
    counts = {"svg": len(svgs), "rect": 0, "polyline": 0, "path": 0, "text": 0, "circle": 0}
    for i, s in enumerate(svgs):
        try:
            root = ET.fromstring(s)
        except ET.ParseError as e:
            print("%s: SVG chart %d is not well-formed XML: %s" % (a.file, i, e))
            return 1
        for el in root.iter():
            tag = el.tag.split("}")[-1]
            if tag in counts and tag != "svg":
                counts[tag] += 1
    if counts["svg"] < a.expect_svg:
        print("%s: %d SVG charts, expected at least %d" % (a.file, counts["svg"], a.expect_svg))
        return 1
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
