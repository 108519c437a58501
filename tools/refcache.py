#!/usr/bin/python3
"""Runs a reference script (tools/ref_*.py), from a cache of earlier runs with the same inputs.

    refcache.py SCRIPT [ARGS...]

The test suite runs the PyTorch references with the same inputs three times in
CI (under ASan, under TSan, then plainly), and importing torch and running the
reference is most of what those tests cost.  With ROSA_REFCACHE set to a
directory, a run is keyed by the SHA-256 of every tools/*.py (the reference and
what it imports) and of its arguments, where an argument naming an existing
file or directory counts by its contents, not its path (the tests' scratch
paths differ between runs).  The values of --out, --output and --save-adapter
are the run's outputs: a successful run stores them with its stdout, stderr
and exit status, and a later run with the same key writes them back instead of
running.  Without ROSA_REFCACHE the script simply runs.
"""
import hashlib
import os
import runpy
import shutil
import subprocess
import sys

OUTPUT_FLAGS = ("--out", "--output", "--save-adapter")
TOOLS = os.path.dirname(os.path.abspath(__file__))


def hash_path(h, path):
    """Feeds a file's bytes, or a directory's relative names and bytes, into h."""
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                h.update(b"F" + os.path.relpath(full, path).encode() + b"\0")
                hash_path(h, full)
    else:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")


def split_args(args):
    """The key's view of the arguments, and the output paths by position."""
    parts, outputs = [], []
    want_output = False
    for a in args:
        flag, eq, value = a.partition("=")
        if a.startswith("--") and eq:
            is_output, a = flag in OUTPUT_FLAGS, value
        else:
            is_output, flag = want_output, None
            want_output = a in OUTPUT_FLAGS
            if want_output:
                parts.append(("arg", a))
                continue
        if flag:
            parts.append(("arg", flag + "="))
        if is_output:
            outputs.append(a)
            parts.append(("output", str(len(outputs) - 1)))
        elif os.path.exists(a):
            parts.append(("path", a))
        else:
            parts.append(("arg", a))
    return parts, outputs


def run_key(script, parts):
    h = hashlib.sha256()
    for name in sorted(os.listdir(TOOLS)):
        if name.endswith(".py"):
            h.update(name.encode() + b"\0")
            hash_path(h, os.path.join(TOOLS, name))
    h.update(os.path.basename(script).encode() + b"\0")
    for kind, value in parts:
        h.update(kind.encode() + b":")
        if kind == "path":
            hash_path(h, value)
        else:
            h.update(value.encode() + b"\0")
    return h.hexdigest()


def copy_path(src, dst):
    if os.path.isdir(src):
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        if os.path.dirname(dst):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)


def replay(entry, outputs):
    for i, out in enumerate(outputs):
        kept = os.path.join(entry, "out%d" % i)
        if os.path.exists(kept):
            copy_path(kept, out)
    for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        with open(os.path.join(entry, name), "rb") as f:
            stream.buffer.write(f.read())
    with open(os.path.join(entry, "rc")) as f:
        return int(f.read())


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: refcache.py SCRIPT [ARGS...]")
    script, args = sys.argv[1], sys.argv[2:]
    cache = os.environ.get("ROSA_REFCACHE")
    if not cache:
        sys.argv = [script] + args
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        runpy.run_path(script, run_name="__main__")
        return
    parts, outputs = split_args(args)
    entry = os.path.join(cache, run_key(script, parts))
    if os.path.isfile(os.path.join(entry, "rc")):
        sys.exit(replay(entry, outputs))
    p = subprocess.run([sys.executable, script] + args, capture_output=True)
    sys.stdout.buffer.write(p.stdout)
    sys.stderr.buffer.write(p.stderr)
    if p.returncode == 0:
        # Written under a temporary name and renamed, so that an interrupted
        # run leaves no entry that looks complete.
        tmp = entry + ".tmp%d" % os.getpid()
        os.makedirs(tmp)
        for i, out in enumerate(outputs):
            if os.path.exists(out):
                copy_path(out, os.path.join(tmp, "out%d" % i))
        for name, data in (("stdout", p.stdout), ("stderr", p.stderr)):
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(data)
        with open(os.path.join(tmp, "rc"), "w") as f:
            f.write("0")
        try:
            os.rename(tmp, entry)
        except OSError:  # another run stored the same entry first
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
