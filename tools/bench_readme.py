#!/usr/bin/env python3
"""Writes the README's performance table from bench/RESULTS.md (make bench-results).

    tools/bench_readme.py bench/RESULTS.md README.md

Replaces the lines between "<!-- bench-table:begin -->" and "<!-- bench-table:end -->" in the
README with a summary of the report's tables: per config and case, rosa and PyTorch tokens/s,
their ratio, rosa's share of the GEMM ceiling and the peak-RSS ratio, under a line naming the
report's date, machine and revision.  The README is rewritten only when its table changes.
"""
import re
import sys

BEGIN, END = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"


def fail(msg):
    sys.exit("bench_readme.py: " + msg)


def parse(path):
    text = open(path, encoding="utf-8").read()
    head = {}
    for key in ("Date", "Machine"):
        m = re.search(r"^- %s: (.*)$" % key, text, re.M)
        if not m:
            fail("%s: no \"- %s:\" line (is it a make bench report?)" % (path, key))
        head[key] = m.group(1)
    line = next((l for l in text.splitlines() if l.startswith("- Measured GEMM ceiling")), "")
    fp32 = re.search(r"FP32 \*\*([\d.]+) GFLOP/s\*\*", line)
    bf16 = re.search(r"BF16 \*\*([\d.]+) GFLOP/s\*\*", line)
    head["ceiling"] = (fp32.group(1) if fp32 else "?", bf16.group(1) if bf16 else None)
    rows = []
    for sec in re.split(r"^## ", text, flags=re.M)[1:]:
        title = sec.splitlines()[0]
        cfg = title.split(" (")[0]
        lines = [l for l in sec.splitlines() if l.startswith("|")]
        if len(lines) < 3 or "rosa tok/s" not in lines[0]:
            continue
        cols = [c.strip() for c in lines[0].strip("|").split("|")]
        for l in lines[2:]:
            cells = dict(zip(cols, [c.strip() for c in l.strip("|").split("|")]))
            rows.append(dict(cells, config=cfg))
    if not rows:
        fail("%s: no result tables found" % path)
    return head, rows


def table(head, rows):
    fp32, bf16 = head["ceiling"]
    out = ["Last `make bench` ([bench/RESULTS.md](bench/RESULTS.md)): %s; %s; GEMM ceiling measured in "
           "the same run: FP32 %s GFLOP/s%s. **Random weights with the exact configs of the real models** "
           "(speed and memory do not depend on the values). Speed ratio > 1: rosa is faster; RSS ratio "
           "< 1: rosa uses less." % (head["Date"], head["Machine"].split(";")[0], fp32,
                                      ", BF16 %s GFLOP/s" % bf16 if bf16 else ""),
           "",
           "| model | case | mode (PyTorch side) | rosa tok/s | PyTorch tok/s | speed rosa / PyTorch "
           "| rosa % of GEMM ceiling | peak RSS rosa / PyTorch |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["config"], r["case"], r["dtype"], r["rosa tok/s"], r["PyTorch tok/s"],
            r["speed rosa / PyTorch"], r["% of ceiling"], r["RSS rosa / PyTorch"]))
    return out


def main():
    if len(sys.argv) != 3:
        fail("usage: tools/bench_readme.py RESULTS.md README.md")
    head, rows = parse(sys.argv[1])
    readme = open(sys.argv[2], encoding="utf-8").read().split("\n")
    try:
        b, e = readme.index(BEGIN), readme.index(END)
    except ValueError:
        fail("%s: no %s ... %s block" % (sys.argv[2], BEGIN, END))
    if e < b:
        fail("%s: %s comes before %s" % (sys.argv[2], END, BEGIN))
    new = readme[:b + 1] + table(head, rows) + readme[e:]
    if new != readme:
        open(sys.argv[2], "w", encoding="utf-8").write("\n".join(new))
    print("bench_readme.py: %s table from %s (%d rows)" % (sys.argv[2], sys.argv[1], len(rows)))


if __name__ == "__main__":
    main()
