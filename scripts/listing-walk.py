#!/usr/bin/env python3
"""Recursive listing through `csicache mount` against the same tree natively: prints figures.

A tree of DIRS directories x FILES files (1 KB each; sizes do not matter for a listing) is made
once under --source. Each run mounts it with `csicache mount file://SOURCE MNT`, walks it twice
(os.walk + os.lstat of every entry; the second pass with the kernel's caches warm), also runs
`find MNT -ls` once warm, and unmounts. The same walks run natively on SOURCE. Several runs,
alternating binaries when two are given (--csicache before --csicache after), so drift on a
shared machine hits both alike. Prints entries/s per pass, the median over runs with the range,
and the ratio to native.

Needs root (FUSE mount). Not a test: timings on a shared machine are noisy; read the ranges.

  python3 scripts/listing-walk.py --csicache /tmp/base/csicache --csicache src/Cli/bin/Release/net10.0/csicache
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def make_tree(root, dirs, files):
    marker = os.path.join(root, f".complete-{dirs}x{files}")
    if os.path.exists(marker):
        return
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    payload = b"x" * 1024
    for d in range(dirs):
        directory = os.path.join(root, f"dir-{d:03d}")
        os.mkdir(directory)
        for f in range(files):
            with open(os.path.join(directory, f"file-{f:04d}.bin"), "wb") as out:
                out.write(payload)
    open(marker, "w").close()


def walk(root):
    """os.walk (getdents) + lstat of every entry; returns (entries, seconds)."""
    count = 0
    start = time.perf_counter()
    for directory, subdirs, names in os.walk(root):
        for name in subdirs:
            os.lstat(os.path.join(directory, name))
            count += 1
        for name in names:
            os.lstat(os.path.join(directory, name))
            count += 1
    return count, time.perf_counter() - start


def find_ls(root):
    start = time.perf_counter()
    out = subprocess.run(["find", root, "-ls"], stdout=subprocess.PIPE, check=True).stdout
    return out.count(b"\n"), time.perf_counter() - start


def mounted(path):
    with open("/proc/self/mountinfo") as info:
        return any(line.split()[4] == path for line in info)


def with_mount(binary, source, cache_dir, mount_point, body):
    os.makedirs(mount_point, exist_ok=True)
    process = subprocess.Popen([binary, "mount", "file://" + source, mount_point, "--cache-dir", cache_dir, "--log-level", "Warning"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while not mounted(mount_point):
            if process.poll() is not None:
                sys.exit(f"{binary} mount exited: {process.stderr.read().decode(errors='replace')}")
            if time.time() > deadline:
                sys.exit("mount did not appear within 60 s")
            time.sleep(0.05)
        return body(mount_point)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if mounted(mount_point):
            subprocess.run(["umount", "-l", mount_point], check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csicache", action="append", required=True, help="csicache binary; give two to compare (before, after)")
    parser.add_argument("--source", default="/tmp/listing-walk-src")
    parser.add_argument("--dirs", type=int, default=100)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    make_tree(args.source, args.dirs, args.files)
    work = tempfile.mkdtemp(prefix="listing-walk-")
    results = {}  # label -> pass -> [entries/s]

    def record(label, name, entries, seconds):
        results.setdefault(label, {}).setdefault(name, []).append(entries / seconds)

    try:
        for run in range(args.runs):
            n, s = walk(args.source)
            n, s = walk(args.source)
            record("native", "walk warm", n, s)
            n, s = find_ls(args.source)
            record("native", "find -ls warm", n, s)
            for index, binary in enumerate(args.csicache):
                label = f"[{index}] {binary}"
                cache_dir = os.path.join(work, f"cache-{index}")

                def body(mnt, label=label):
                    n1, s1 = walk(mnt)
                    n2, s2 = walk(mnt)
                    n3, s3 = find_ls(mnt)
                    record(label, "walk 1st", n1, s1)
                    record(label, "walk warm", n2, s2)
                    record(label, "find -ls warm", n3, s3)
                    return n1, n2

                n1, n2 = with_mount(binary, args.source, cache_dir, os.path.join(work, f"mnt-{index}"), body)
                if n1 != n2 or n1 != args.dirs * (args.files + 1) + 1:  # every file and dir, plus the marker
                    sys.exit(f"{label}: walked {n1} then {n2} entries")
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    native = {name: statistics.median(v) for name, v in results["native"].items()}
    print(f"tree: {args.dirs} dirs x {args.files} files; {args.runs} runs; entries/s, median (min-max); ratio = median / native median")
    for label, passes in results.items():
        print(label)
        for name, values in passes.items():
            median = statistics.median(values)
            ratio = median / native[name.replace("1st", "warm")] if label != "native" else 1.0
            print(f"  {name:14} {median:>10,.0f}  ({min(values):,.0f}-{max(values):,.0f})  {ratio:.2f}x native")


if __name__ == "__main__":
    main()
