#!/usr/bin/env python3
"""Summarise a bench/compare.sh run: raw figures per round, medians, glint/anchor ratios and
the targets of issue 6. Usage: bench/summarize.py WORKDIR/results.txt"""
import json, statistics, sys
from collections import defaultdict

rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
hash_limit = [float(v) for k, _, _, v in rows if k == "hash"]
# (system, scenario) -> list of per-round metric dicts
runs = defaultdict(list)
for sys_, name, rnd, path in (r for r in rows if r[0] != "hash"):
    j = json.load(open(path))
    op = j["ops"][0]
    srv = j.get("server") or {}
    runs[(sys_, name)].append({
        "round": int(rnd), "MBps": op["throughput_MBps"], "req_s": op["requests_per_s"],
        "p50": op["latency_ms"]["p50"], "p99": op["latency_ms"]["p99"],
        "max": op["latency_ms"]["max"], "errors": j["totals"]["errors"],
        "verified": op["bytes_verified"], "bytes": op["bytes"],
        "cpu_GiB": srv.get("cpu_s_per_GiB") or 0.0, "rss": srv.get("peak_rss_MiB") or 0.0,
    })

def f(v):
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"

print("# raw, per round")
print("hash md5+sha512 (hashlib, CPU-s/GiB): " + " ".join(f"{v:.3f}" for v in hash_limit))
for (s, n), ms in runs.items():
    for m in ms:
        print(f"r{m['round']} {s:6s} {n:10s} MB/s={m['MBps']:.1f} req/s={m['req_s']:.1f} "
              f"p50={m['p50']:.2f}ms p99={m['p99']:.2f}ms max={m['max']:.2f}ms "
              f"cpu_s/GiB={m['cpu_GiB']:.3f} rss={m['rss']:.1f}MiB errors={m['errors']} "
              f"verified={m['verified']}/{m['bytes'] if n != 'list' else 0}")

med = {k: {x: statistics.median(m[x] for m in ms) for x in ms[0] if x != "round"}
       for k, ms in runs.items()}
print(f"\n{'system':7s} {'scenario':11s} {'MB/s':>9s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} "
      f"{'CPU-s/GiB':>9s} {'RSS MiB':>8s} {'errors':>6s}   (medians of {max(len(v) for v in runs.values())})")
for (s, n), v in med.items():
    print(f"{s:7s} {n:11s} {v['MBps']:9.1f} {v['req_s']:9.1f} {v['p50']:8.2f} {v['p99']:8.2f} "
          f"{v['cpu_GiB']:9.3f} {v['rss']:8.1f} {v['errors']:6.0f}")
hl = statistics.median(hash_limit) if hash_limit else None
if hl:
    print(f"hash limit md5+sha512 (hashlib/OpenSSL, in memory): {hl:.3f} CPU-s/GiB (median)")

def get(s, n, k):
    return med.get((s, n), {}).get(k)

def ratio(a, b):
    return None if a is None or not b else a / b

print("\n# glint/anchor ratios (medians of this run)")
for other in ("nginx", "glance", "glint-b"):
    for n in ("upload", "download", "boot-storm", "list"):
        if (other, n) in med and ("glint", n) in med:
            mb = ratio(get("glint", n, "MBps"), get(other, n, "MBps"))
            rq = ratio(get("glint", n, "req_s"), get(other, n, "req_s"))
            cpu = ratio(get("glint", n, "cpu_GiB"), get(other, n, "cpu_GiB"))
            parts = [f"MB/s x{mb:.2f}" if mb and n != "list" else "",
                     f"req/s x{rq:.2f}" if rq and n == "list" else "",
                     f"CPU-s/GiB x{cpu:.2f}" if cpu and n != "list" else ""]
            print(f"glint/{other} {n}: " + ", ".join(p for p in parts if p))

print("\n# targets (issue 6)")
def target(name, ok, detail):
    state = "n/a " if ok is None else ("MET " if ok else "MISS")
    print(f"{state} {name}: {detail}")

up = get("glint", "upload", "cpu_GiB")
if up is not None and hl:
    target("upload CPU <= 1.15 x hash limit", up <= 1.15 * hl,
           f"{up:.3f} vs {hl:.3f} CPU-s/GiB = x{up / hl:.2f} (non-hash part {up - hl:+.3f}, "
           f"{(up - hl) / hl * 100:+.0f}% of the hashes)")
r = ratio(get("glint", "upload", "MBps"), get("glance", "upload", "MBps"))
target("single upload >= 5 x Glance MB/s", None if r is None else r >= 5,
       "n/a" if r is None else f"x{r:.2f} ({get('glint', 'upload', 'MBps'):.0f} vs {get('glance', 'upload', 'MBps'):.0f} MB/s)")
d, n_ = get("glint", "download", "cpu_GiB"), get("nginx", "download", "cpu_GiB")
target("download CPU-s/GiB <= nginx", None if d is None or n_ is None else d <= n_,
       "n/a" if d is None or n_ is None else f"{d:.3f} vs {n_:.3f} = x{d / n_:.2f}")
b, bn = get("glint", "boot-storm", "MBps"), get("nginx", "boot-storm", "MBps")
target("boot storm MB/s >= nginx", None if b is None or bn is None else b >= bn,
       "n/a" if b is None or bn is None else f"{b:.0f} vs {bn:.0f} MB/s = x{b / bn:.2f}")
br = get("glint", "boot-storm", "rss")
target("boot storm RSS <= 64 MiB", None if br is None else br <= 64, "n/a" if br is None else f"{br:.1f} MiB")
lr = ratio(get("glint", "list", "req_s"), get("glance", "list", "req_s"))
target("list >= 100 x Glance req/s", None if lr is None else lr >= 100,
       "n/a" if lr is None else f"x{lr:.1f} ({get('glint', 'list', 'req_s'):.0f} vs {get('glance', 'list', 'req_s'):.1f} req/s)")
lp = get("glint", "list", "p99")
target("list p99 <= 5 ms", None if lp is None else lp <= 5, "n/a" if lp is None else f"{lp:.2f} ms")
big = runs.get(("glint", "upload-big"))
target("RSS during the big upload <= 32 MiB", None if not big else big[0]["rss"] <= 32,
       "n/a" if not big else f"{big[0]['rss']:.1f} MiB ({big[0]['bytes'] / (1 << 30):.1f} GiB at {big[0]['MBps']:.0f} MB/s)")
