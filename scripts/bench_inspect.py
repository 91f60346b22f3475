#!/usr/bin/env python3
"""Times `glint inspect FILE` beside `qemu-img info FILE` on large and real images.

Makes the images in --dir when missing (a 10 GiB sparse raw file, a 10 GiB qcow2 with its
metadata preallocated, and 256 MiB of random data converted by qemu-img to qcow2,
streamOptimized VMDK, VHDX and fixed VHD), then runs each command --runs times after one
untimed run (page cache warm) and prints the median wall time in ms. --before names a second
glint binary (an older build) to time in the same run.

    python3 scripts/bench_inspect.py --after target/debug/glint --before /tmp/glint-old
"""
import argparse
import os
import statistics
import subprocess
import time

IMAGES = ["raw-10g-sparse.img", "meta-10g.qcow2", "data.qcow2", "data-stream.vmdk",
          "data.vhdx", "data-fixed.vhd"]


def make_images(d):
    def need(name):
        return not os.path.exists(os.path.join(d, name))
    run = lambda *a: subprocess.run(a, check=True, cwd=d)
    if need("raw-10g-sparse.img"):
        run("truncate", "-s", "10G", "raw-10g-sparse.img")
    if need("meta-10g.qcow2"):
        run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata",
            "meta-10g.qcow2", "10G")
    if need("data.raw"):
        with open(os.path.join(d, "data.raw"), "wb") as f:
            f.write(os.urandom(256 << 20))
    for name, args in [("data.qcow2", ["-O", "qcow2"]),
                       ("data-stream.vmdk", ["-O", "vmdk", "-o", "subformat=streamOptimized"]),
                       ("data.vhdx", ["-O", "vhdx"]),
                       ("data-fixed.vhd", ["-O", "vpc", "-o", "subformat=fixed"])]:
        if need(name):
            run("qemu-img", "convert", *args, "data.raw", name)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--after", required=True, help="glint binary to time")
    p.add_argument("--before", help="an older glint binary to time in the same run")
    p.add_argument("--dir", default="/tmp/glint-bench-inspect")
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    make_images(a.dir)
    tools = []
    if a.before:
        tools.append(("glint before", [os.path.abspath(a.before), "inspect"]))
    tools += [("glint", [os.path.abspath(a.after), "inspect"]), ("qemu-img info", ["qemu-img", "info"])]
    print(f"median wall ms of {a.runs} runs, page cache warm; columns: "
          + " | ".join(name for name, _ in tools) + " | glint's output")
    for image in IMAGES:
        path = os.path.join(a.dir, image)
        cells, last = [], ""
        for name, cmd in tools:
            subprocess.run(cmd + [path], capture_output=True)
            times = []
            for _ in range(a.runs):
                t = time.perf_counter()
                r = subprocess.run(cmd + [path], capture_output=True)
                times.append((time.perf_counter() - t) * 1000)
            cells.append(f"{statistics.median(times):8.1f}")
            if name == "glint":
                last = r.stdout.decode().strip()
        print(f"{image:20s} {os.path.getsize(path):>12d} | " + " | ".join(cells) + " | " + last)


if __name__ == "__main__":
    main()
