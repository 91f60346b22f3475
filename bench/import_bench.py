#!/usr/bin/env python3
"""The measuring half of bench/import.sh: one image import (or plain upload) against a running
Image API v2 server, timed from the client and costed from /proc; the hash limit; the summary.

  import_bench.py run --system S --method M --round R --url URL --pid PID --payload FILE
                      --out results.jsonl [--origin-url URL --origin-pid PID]
                      [--to-store B] [--poll 0.05] [--deadline 900] [-H 'Name: value' ...]
  import_bench.py hash --size BYTES --round R --out results.jsonl
  import_bench.py summary results.jsonl

Methods:
  upload        POST /v2/images, PUT /file (curl, from FILE): the baseline
  glance-direct POST /v2/images, PUT /stage (curl, from FILE), POST /import, poll until active
  web-download  POST /v2/images, POST /import (the origin's URL of FILE), poll until active
  copy-image    (not measured: an image uploaded into the default store first), then
                POST /import {copy-image, stores: [B]}, poll until B is one of its stores

The measured phase runs from the first request to the first poll that sees the end state —
the image active (copy-image: in the new store) and its import task `success` — so the poll
interval (--poll, 50 ms) is part of the wall time: at most one interval too long, and the
polls' own cost is in the server's CPU. `shown_done_at` is when the image first looked done
(Glance shows it `active` while its task is still finishing). A failed import (task failure, the image
back to `queued`, a failed store) or the deadline ends the run with an error, never a figure.
The server's CPU is utime + stime of the process and of its direct children from
/proc/PID/stat (every thread: import threads, hashing threads, uWSGI workers and their
task threads); its peak RSS the largest sum of VmRSS over the same processes, sampled every
20 ms. Every image the run made is deleted afterwards (not measured), then `sync` so the
next measurement does not pay for this one's dirty pages.
"""
import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict

CLK_TCK = os.sysconf("SC_CLK_TCK")
GIB = 1 << 30


def pids_of(pid):
    """The process and its direct children (of any of its threads)."""
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    pids += [int(c) for c in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return pids


def cpu_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def rss_kib_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid):
    return sum(cpu_of(p) for p in pids_of(pid))


def rss_kib(pid):
    return sum(rss_kib_of(p) for p in pids_of(pid))


class Watch:
    """CPU-seconds and peak RSS of a process (and its children) over a phase."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, rss_kib(pid), threading.Event()
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.cpu0 = cpu_seconds(pid)
        self.sampler.start()

    def _sample(self):
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid))

    def finish(self):
        self.stop.set()
        self.sampler.join()
        self.peak = max(self.peak, rss_kib(self.pid))
        return cpu_seconds(self.pid) - self.cpu0, self.peak


class Api:
    def __init__(self, base, headers):
        self.base = base.rstrip("/")
        self.headers = dict(h.split(": ", 1) for h in headers)

    def call(self, method, path, body=None, headers=None, ok=(200, 201, 202, 204)):
        data = None if body is None else json.dumps(body).encode()
        h = dict(self.headers)
        if body is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        if status not in ok:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {raw[:500]!r}")
        return json.loads(raw) if raw.strip() else None

    def create(self, name):
        return self.call("POST", "/v2/images", {"name": name, "disk_format": "raw",
                                                "container_format": "bare"})["id"]

    def image(self, image_id):
        return self.call("GET", f"/v2/images/{image_id}")

    def delete(self, image_id):
        self.call("DELETE", f"/v2/images/{image_id}", ok=(204, 404))

    def tasks(self, image_id):
        try:
            return self.call("GET", f"/v2/images/{image_id}/tasks").get("tasks", [])
        except RuntimeError as e:
            return [{"error": str(e)}]


def put_file(api, path, payload):
    """curl sends the file (Content-Length, no Expect: 100-continue); raises on a non-2xx."""
    url = api.base + path
    extra = [a for k, v in api.headers.items() for a in ("-H", f"{k}: {v}")]
    out = subprocess.run(
        ["curl", "-sS", "-X", "PUT", "-T", payload, "-H", "Content-Type: application/octet-stream",
         "-H", "Expect:", *extra, "-o", "/dev/stderr", "-w", "%{http_code}", url],
        capture_output=True, text=True, check=False)
    if not out.stdout.startswith("2"):
        raise RuntimeError(f"PUT {url}: HTTP {out.stdout} {out.stderr[:500]}")


def stores_of(image):
    return [s for s in (image.get("stores") or "").split(",") if s]


def wait_for(api, image_id, done, poll, deadline, started_from, t0):
    """Polls until done(image) and the image's import task has ended `success` (Glance shows
    the image `active` before its task has released the lock, removed the staged data and
    ended; glint ends both in one transaction). Returns (polls, seconds from t0 to the first
    poll that showed done(image)). Fails fast on a reverted or failed import."""
    polls, seen, visible = 0, set(), None
    while True:
        image = api.image(image_id)
        polls += 1
        status = image.get("status")
        seen.add(status)
        tasks = None
        if done(image):
            if visible is None:
                visible = time.monotonic() - t0
            tasks = api.tasks(image_id)
            if tasks and all(t.get("status") == "success" for t in tasks):
                return polls, visible
        failed = image.get("os_glance_failed_import") or ""
        reverted = status == "queued" and (started_from != "queued" or "importing" in seen)
        # Once a second, the image's tasks too (Glance sets `importing` only when its task
        # runs: a web-download that fails before that looks `queued` throughout).
        if tasks is None and polls % 20 == 0:
            tasks = api.tasks(image_id)
        task_failed = any(t.get("status") == "failure" or "error" in t for t in tasks or [])
        if failed or reverted or task_failed or status in ("killed", "deleted", "deactivated"):
            raise RuntimeError(f"import failed: status {status}, failed stores {failed!r}, "
                               f"tasks {json.dumps(api.tasks(image_id))[:1500]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"deadline passed with the image {status} after {polls} polls; "
                               f"tasks {json.dumps(api.tasks(image_id))[:1500]}")
        time.sleep(poll)


def md5_of(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def run(a):
    api = Api(a.url, a.header)
    size = os.path.getsize(a.payload)
    md5 = md5_of(a.payload)  # also brings the payload into the page cache, before the phase
    name = f"import-bench-{a.system}-{a.method}-r{a.round}"
    made = []
    phases = {}
    try:
        if a.method == "copy-image":
            src = api.create(name + "-source")
            made.append(src)
            put_file(api, f"/v2/images/{src}/file", a.payload)
            before = api.image(src)
            if before["status"] != "active" or not stores_of(before):
                raise RuntimeError(f"copy-image source not active in a store: {before}")
            if a.to_store in stores_of(before):
                raise RuntimeError(f"copy-image source already in {a.to_store}")
            subprocess.run(["sync"], check=True)
        watch = Watch(a.pid)
        origin_cpu0 = cpu_seconds(a.origin_pid) if a.origin_pid else None
        t0 = time.monotonic()
        deadline = t0 + a.deadline
        polls = 0
        if a.method == "upload":
            image_id = api.create(name)
            made.append(image_id)
            put_file(api, f"/v2/images/{image_id}/file", a.payload)
            image = api.image(image_id)
            polls = 1
            if image["status"] != "active":
                raise RuntimeError(f"upload ended with the image {image['status']}")
        elif a.method == "glance-direct":
            image_id = api.create(name)
            made.append(image_id)
            put_file(api, f"/v2/images/{image_id}/stage", a.payload)
            t1 = time.monotonic()
            phases["stage_s"] = t1 - t0
            phases["stage_cpu_s"] = cpu_seconds(a.pid) - watch.cpu0
            api.call("POST", f"/v2/images/{image_id}/import",
                     {"method": {"name": "glance-direct"}})
            polls, phases["visible_s"] = wait_for(
                api, image_id, lambda i: i["status"] == "active", a.poll, deadline, "uploading",
                t0)
            phases["import_s"] = time.monotonic() - t1
        elif a.method == "web-download":
            image_id = api.create(name)
            made.append(image_id)
            api.call("POST", f"/v2/images/{image_id}/import",
                     {"method": {"name": "web-download", "uri": a.origin_url}})
            polls, phases["visible_s"] = wait_for(
                api, image_id, lambda i: i["status"] == "active", a.poll, deadline, "queued", t0)
        elif a.method == "copy-image":
            image_id = made[0]
            api.call("POST", f"/v2/images/{image_id}/import",
                     {"method": {"name": "copy-image"}, "stores": [a.to_store]})
            polls, phases["visible_s"] = wait_for(
                api, image_id, lambda i: a.to_store in stores_of(i)
                and not (i.get("os_glance_importing_to_stores") or ""),
                a.poll, deadline, "active", t0)
        else:
            raise SystemExit(f"unknown method {a.method}")
        wall = time.monotonic() - t0
        cpu, peak = watch.finish()
        origin_cpu = cpu_seconds(a.origin_pid) - origin_cpu0 if a.origin_pid else None
        image = api.image(image_id)
        if image.get("checksum") != md5 or image.get("size") != size:
            raise RuntimeError(f"{a.method}: the image has checksum {image.get('checksum')} size "
                               f"{image.get('size')}, expected {md5} {size}")
        record = {"system": a.system, "method": a.method, "round": a.round, "bytes": size,
                  "wall_s": wall, "server_cpu_s": cpu, "peak_rss_kib": peak, "polls": polls,
                  "poll_s": a.poll, "stores": stores_of(image), "loadavg": os.getloadavg()[0],
                  **phases}
        if origin_cpu is not None:
            record["origin_cpu_s"] = origin_cpu
        with open(a.out, "a") as f:
            f.write(json.dumps(record) + "\n")
    finally:
        for image_id in made:
            try:
                api.delete(image_id)
            except Exception as e:  # noqa: BLE001 - cleanup goes on; the error is shown
                print(f"# could not delete {image_id}: {e}", file=sys.stderr)
        subprocess.run(["sync"], check=False)


def hash_limit(a):
    """CPU-s per GiB OpenSSL (through hashlib) needs for md5 + sha512 over SIZE bytes (as
    bench/compare.sh measures it)."""
    size = a.size
    block = os.urandom(64 << 20)
    mv = memoryview(block)
    h1, h2 = hashlib.md5(), hashlib.sha512()
    done = 0
    c = time.process_time()
    while done < size:
        n = min(len(block), size - done)
        for o in range(0, n, 1 << 20):
            piece = mv[o:min(o + (1 << 20), n)]
            h1.update(piece)
            h2.update(piece)
        done += n
    c = time.process_time() - c
    with open(a.out, "a") as f:
        f.write(json.dumps({"system": "hash", "method": "md5+sha512", "round": a.round,
                            "bytes": size, "cpu_s": c}) + "\n")


METHODS = ["upload", "glance-direct", "web-download", "copy-image"]


def summary(a):
    rows = [json.loads(line) for line in open(a.results) if line.strip()]
    hashes = [r["cpu_s"] / (r["bytes"] / GIB) for r in rows if r["system"] == "hash"]
    runs = defaultdict(list)
    for r in rows:
        if r["system"] == "hash":
            continue
        gib = r["bytes"] / GIB
        runs[(r["system"], r["method"])].append({
            "round": r["round"], "wall": r["wall_s"], "gibps": gib / r["wall_s"],
            "cpu": r["server_cpu_s"] / gib, "rss": r["peak_rss_kib"] / 1024,
            "polls": r["polls"], "stage": r.get("stage_s"), "import": r.get("import_s"),
            "stage_cpu": r.get("stage_cpu_s", 0) / gib, "visible": r.get("visible_s"),
            "origin": (r["origin_cpu_s"] / gib) if "origin_cpu_s" in r else None,
            "load": r.get("loadavg")})
    print("# raw, per round (server CPU-s per GiB from /proc; RSS: the server's peak)")
    print("hash md5+sha512 (hashlib, CPU-s/GiB): " + " ".join(f"{v:.3f}" for v in hashes))
    systems = sorted({s for s, _ in runs}, key=lambda s: (s != "glint", s))
    for s in systems:
        for m in METHODS:
            for x in runs.get((s, m), []):
                extra = ""
                if x["stage"] is not None:
                    extra += (f" stage={x['stage']:.2f}s ({x['stage_cpu']:.3f} CPU-s/GiB)"
                              f" import={x['import']:.2f}s")
                if x["visible"] is not None:
                    extra += f" shown_done_at={x['visible']:.2f}s"
                if x["origin"] is not None:
                    extra += f" origin_cpu_s/GiB={x['origin']:.3f}"
                print(f"r{x['round']} {s:6s} {m:13s} wall={x['wall']:7.2f}s "
                      f"GiB/s={x['gibps']:.3f} cpu_s/GiB={x['cpu']:.3f} rss={x['rss']:.1f}MiB "
                      f"polls={x['polls']}{extra} load1={x['load']:.2f}")
    med = {k: {f: statistics.median(x[f] for x in v) for f in ("wall", "gibps", "cpu", "rss")}
           for k, v in runs.items()}
    hl = statistics.median(hashes) if hashes else None
    n = max((len(v) for v in runs.values()), default=0)
    print(f"\n{'system':7s} {'method':13s} {'wall s':>8s} {'GiB/s':>7s} {'CPU-s/GiB':>9s} "
          f"{'x hash':>7s} {'RSS MiB':>8s}   (medians of {n})")
    for s in systems:
        for m in METHODS:
            v = med.get((s, m))
            if v:
                xh = f"{v['cpu'] / hl:7.2f}" if hl else f"{'':7s}"
                print(f"{s:7s} {m:13s} {v['wall']:8.2f} {v['gibps']:7.3f} {v['cpu']:9.3f} "
                      f"{xh} {v['rss']:8.1f}")
    if hl:
        print(f"hash limit md5+sha512 (hashlib/OpenSSL, in memory): {hl:.3f} CPU-s/GiB (median)")
    print("\n# import / upload, same system, same run (medians): wall and server CPU-s/GiB")
    for s in systems:
        up = med.get((s, "upload"))
        for m in METHODS[1:]:
            v = med.get((s, m))
            if up and v:
                print(f"{s:7s} {m:13s} wall x{v['wall'] / up['wall']:.2f}  "
                      f"CPU x{v['cpu'] / up['cpu']:.2f}")
    others = [s for s in systems if s != "glint"]
    if others:
        print("\n# glint / other, per method (medians): wall (lower is better), GiB/s, CPU-s/GiB")
        for o in others:
            for m in METHODS:
                g, v = med.get(("glint", m)), med.get((o, m))
                if g and v:
                    print(f"glint/{o} {m:13s} wall x{g['wall'] / v['wall']:.2f}  "
                          f"GiB/s x{g['gibps'] / v['gibps']:.2f}  CPU x{g['cpu'] / v['cpu']:.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--system", required=True)
    r.add_argument("--method", required=True, choices=METHODS)
    r.add_argument("--round", type=int, required=True)
    r.add_argument("--url", required=True)
    r.add_argument("--pid", type=int, required=True)
    r.add_argument("--payload", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--origin-url")
    r.add_argument("--origin-pid", type=int)
    r.add_argument("--to-store")
    r.add_argument("-H", "--header", action="append", default=[],
                   help="`Name: value` sent with every request (repeatable)")
    r.add_argument("--poll", type=float, default=0.05)
    r.add_argument("--deadline", type=float, default=900.0)
    h = sub.add_parser("hash")
    h.add_argument("--size", type=int, required=True)
    h.add_argument("--round", type=int, required=True)
    h.add_argument("--out", required=True)
    s = sub.add_parser("summary")
    s.add_argument("results")
    a = p.parse_args()
    if a.cmd == "run":
        if a.method == "web-download" and not a.origin_url:
            p.error("web-download needs --origin-url")
        if a.method == "copy-image" and not a.to_store:
            p.error("copy-image needs --to-store")
        run(a)
    elif a.cmd == "hash":
        hash_limit(a)
    else:
        summary(a)


if __name__ == "__main__":
    main()
