#!/usr/bin/env python3
"""Upload/download throughput, server CPU-seconds per GiB and peak RSS, for glint beside the
anchors (nginx with sendfile, real Glance), in one run, rounds alternating between systems.

Usage: scripts/bench_datapath.py [--size-mib N] [--rounds R] [--systems glint,nginx,glance]
                                  [--glint-bin PATH] [--glance-dir DIR] [--nginx-dir DIR]
                                  [--glint-b-bin PATH] [--glint-b-env KEY=VALUE]
                                  [--container-format bare|ovf|…]

The anchors come from ../shared/anchors (glance/setup.sh must have been run into --glance-dir;
nginx must be installed). CPU time is read from /proc/PID/stat (utime+stime of the server's
processes, children included for nginx/uWSGI workers); RSS is sampled every 20 ms from
/proc/PID/status (sum over the server's processes). Only loopback traffic.
"""
import argparse, os, re, shutil, signal, statistics, subprocess, sys, tempfile, threading, time, json

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ANCHORS = os.path.join(os.path.dirname(ROOT), "shared", "anchors")
if not os.path.isdir(ANCHORS):
    ANCHORS = "/work/shared/anchors"
TICK = os.sysconf("SC_CLK_TCK")
GIB = 1 << 30


def pids_of(root_pid):
    pids = [root_pid]
    try:
        for tid in os.listdir(f"/proc/{root_pid}/task"):
            with open(f"/proc/{root_pid}/task/{tid}/children") as f:
                pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return pids


def cpu_seconds(root_pid):
    total = 0
    for pid in pids_of(root_pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / TICK


def rss_kib(root_pid):
    total = 0
    for pid in pids_of(root_pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                m = re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M)
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)

    def finish(self):
        self.stop.set()
        self.join()
        return self.peak / 1024


def curl(args):
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"] + args,
                         check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), float(out[1])


CONTAINER_FORMAT = "bare"


def create_image(url, container_format=None):
    body = json.dumps({"name": "bench", "disk_format": "raw",
                       "container_format": container_format or CONTAINER_FORMAT})
    out = subprocess.run(["curl", "-sS", "-X", "POST", f"{url}/v2/images", "-H", "Content-Type: application/json",
                          "-d", body],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["id"]


class Glint:
    name = "glint"

    def __init__(self, binary, workdir, container_format=None, env=None):
        self.container_format = container_format
        self.data = tempfile.mkdtemp(prefix="glint-bench-", dir=workdir)
        self.proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data],
                                     stdout=subprocess.PIPE, stderr=open(os.path.join(self.data, "log"), "w"), text=True,
                                     env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline()
        self.url = line.strip().split()[-1]
        self.pid = self.proc.pid

    def upload(self, path):
        self.image = create_image(self.url, getattr(self, "container_format", None))
        return curl(["-X", "PUT", "-H", "Expect:", "-H", "Content-Type: application/octet-stream", "-T", path,
                     f"{self.url}/v2/images/{self.image}/file"])

    def download(self):
        return curl([f"{self.url}/v2/images/{self.image}/file"])

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        shutil.rmtree(self.data, ignore_errors=True)


class Glance(Glint):
    name = "glance"

    def __init__(self, run_dir):
        subprocess.run([os.path.join(ANCHORS, "glance", "start.sh"), run_dir], check=True, stdout=subprocess.DEVNULL)
        self.run_dir, self.url = run_dir, "http://127.0.0.1:19292"
        self.pid = int(open(os.path.join(run_dir, "uwsgi.pid")).read())

    def close(self):
        subprocess.run(["curl", "-sS", "-o", "/dev/null", "-X", "DELETE", f"{self.url}/v2/images/{self.image}"])
        subprocess.run([os.path.join(ANCHORS, "glance", "stop.sh"), self.run_dir], stdout=subprocess.DEVNULL)


class Nginx:
    name = "nginx"

    def __init__(self, run_dir):
        subprocess.run([os.path.join(ANCHORS, "nginx", "start.sh"), run_dir, "18080"], check=True, stdout=subprocess.DEVNULL)
        self.run_dir, self.url = run_dir, "http://127.0.0.1:18080"
        self.pid = int(open(os.path.join(run_dir, "nginx.pid")).read())

    def upload(self, path):
        subprocess.run(["curl", "-sS", "-o", "/dev/null", "-X", "DELETE", f"{self.url}/upload/bench.bin"])
        return curl(["-X", "PUT", "-H", "Expect:", "-T", path, f"{self.url}/upload/bench.bin"])

    def download(self):
        return curl([f"{self.url}/upload/bench.bin"])

    def close(self):
        subprocess.run([os.path.join(ANCHORS, "nginx", "stop.sh"), self.run_dir], stdout=subprocess.DEVNULL)


def measure(server, op, path, size):
    sampler = RssSampler(server.pid)
    sampler.start()
    cpu0 = cpu_seconds(server.pid)
    code, secs = server.upload(path) if op == "upload" else server.download()
    time.sleep(0.3)  # let the server finish its bookkeeping (commit, close) before reading CPU
    cpu = cpu_seconds(server.pid) - cpu0
    peak = sampler.finish()
    ok = code in (200, 201, 204)
    return {"ok": ok, "code": code, "MBps": size / secs / 1e6, "cpu_s_per_GiB": cpu / (size / GIB), "peak_rss_MiB": peak}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--systems", default="glint,nginx,glance")
    ap.add_argument("--glint-bin", default=os.path.join(ROOT, "target", "release", "glint"))
    ap.add_argument("--glint-b-bin", default=None,
                    help="a second glint build, measured as system 'glint-b' (A/B comparisons)")
    ap.add_argument("--glint-b-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment for glint-b (e.g. GLINT_ZERO_COPY_DOWNLOAD=false); repeatable")
    ap.add_argument("--glance-dir", default="/work/anchors-run/glance")
    ap.add_argument("--nginx-dir", default="/work/anchors-run/nginx")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--container-format", default="bare",
                    help="container_format of the images (Glance inspects only 'bare' uploads)")
    args = ap.parse_args()
    global CONTAINER_FORMAT
    CONTAINER_FORMAT = args.container_format
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-")
    size = args.size_mib << 20
    path = os.path.join(workdir, f"f{args.size_mib}m.bin")
    if not os.path.exists(path) or os.path.getsize(path) != size:
        with open(path, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL)  # warm the page cache
    systems = args.systems.split(",")
    results = {}
    print(f"# {args.size_mib} MiB, {args.rounds} rounds, loadavg {open('/proc/loadavg').read().split()[:3]}", flush=True)
    for r in range(args.rounds):
        for name in systems:
            server = {"glint": lambda: Glint(args.glint_bin, workdir),
                      # the same server, images with container_format=ovf: not inspected
                      "glint-ovf": lambda: Glint(args.glint_bin, workdir, "ovf"),
                      # the same server with metrics off: what counting costs
                      "glint-nometrics": lambda: Glint(args.glint_bin, workdir,
                                                       env={"GLINT_METRICS_ENABLED": "false"}),
                      "glint-b": lambda: Glint(args.glint_b_bin or args.glint_bin, workdir,
                                               env=dict(kv.split("=", 1) for kv in args.glint_b_env)),
                      "nginx": lambda: Nginx(args.nginx_dir),
                      "glance": lambda: Glance(args.glance_dir)}[name]()
            try:
                for op in ("upload", "download"):
                    m = measure(server, op, path, size)
                    results.setdefault((name, op), []).append(m)
                    print(f"round {r+1} {name:6s} {op:8s} " + " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()), flush=True)
            finally:
                server.close()
    print(f"\n{'system':8s} {'op':9s} {'MB/s':>9s} {'CPU-s/GiB':>10s} {'peak RSS MiB':>13s}   (medians of {args.rounds})")
    med = {}
    for (name, op), ms in results.items():
        med[(name, op)] = {k: statistics.median(m[k] for m in ms) for k in ("MBps", "cpu_s_per_GiB", "peak_rss_MiB")}
        v = med[(name, op)]
        print(f"{name:8s} {op:9s} {v['MBps']:9.1f} {v['cpu_s_per_GiB']:10.3f} {v['peak_rss_MiB']:13.1f}")
    if "glint" in systems:
        print()
        for other in (s for s in systems if s != "glint"):
            for op in ("upload", "download"):
                g, o = med[("glint", op)], med[(other, op)]
                print(f"glint/{other} {op}: MB/s x{g['MBps']/o['MBps']:.2f}, CPU-s/GiB x{g['cpu_s_per_GiB']/max(o['cpu_s_per_GiB'],1e-9):.2f}")
    if not all(m["ok"] for ms in results.values() for m in ms):
        sys.exit("some transfers failed")


if __name__ == "__main__":
    main()
