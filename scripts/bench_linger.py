#!/usr/bin/env python3
"""What a client that keeps sending after an early refusal costs glint (issue 18).

Usage: scripts/bench_linger.py [--glint-bin PATH] [--rounds R] [--anchor-mib N]
                               [--config KEY=VALUE ...]

Starts glint (default config, plus any --config lines) on 127.0.0.1:0 with a temporary data
dir, creates an image declared qcow2, and PUTs an endless chunked body of random raw bytes
(1 MiB chunks, as fast as the socket takes them) from a writer thread while a reader thread
reads the answer. glint refuses it (415) after the first frames, then lingers: it discards
what the client still sends until lingering_close_max_bytes / lingering_close_time_ms cut the
client off. Per round it prints: the answer's status, seconds from the answer to the cut,
bytes the client wrote after the answer, glint's CPU-seconds over that time (utime+stime from
/proc/PID/stat), the client's own CPU-seconds (this process: the sender), and the lingering
metrics. The anchor, in the same run: an accepted upload of --anchor-mib MiB (raw, bare:
inspected and hashed) and glint's CPU-seconds per GiB for it. With --latency-senders N it
then times 100 sequential GET /healthcheck alone, and again while N endless senders linger
(give a time bound with --config so that they end). Only loopback traffic.
"""
import argparse, json, os, resource, socket, statistics, subprocess, sys, tempfile, threading, time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")
MIB, GIB = 1 << 20, 1 << 30


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def request(base, method, path, body=None, headers=None):
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metrics(base):
    _, text = request(base, "GET", "/metrics")
    out = {}
    for line in text.decode().splitlines():
        if line.startswith("glint_lingering"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def create(base, disk_format):
    body = json.dumps({"disk_format": disk_format, "container_format": "bare"}).encode()
    status, text = request(base, "POST", "/v2/images", body, {"content-type": "application/json"})
    assert status == 201, (status, text)
    return json.loads(text)["id"]


def endless_round(base, host, port, pid, payload):
    image = create(base, "qcow2")
    chunk = b"%x\r\n" % len(payload) + payload + b"\r\n"
    head = (f"PUT /v2/images/{image}/file HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    sock = socket.create_connection((host, port))
    state = {"sent": 0, "answer_at": None, "sent_at_answer": None, "cut_at": None, "error": None}

    def send():
        try:
            sock.sendall(head)
            while True:
                sock.sendall(chunk)
                state["sent"] += len(chunk)
        except OSError as e:
            state["cut_at"], state["error"] = time.monotonic(), type(e).__name__

    before = metrics(base)
    writer = threading.Thread(target=send)
    writer.start()
    got = b""
    while b"\r\n\r\n" not in got:
        data = sock.recv(65536)
        if not data:
            break
        got += data
    state["answer_at"], state["sent_at_answer"] = time.monotonic(), state["sent"]
    glint_cpu, own_cpu = cpu_seconds(pid), own_cpu_seconds()
    writer.join()
    glint_cpu, own_cpu = cpu_seconds(pid) - glint_cpu, own_cpu_seconds() - own_cpu
    sock.close()
    after = metrics(base)
    status = got.split(b" ", 2)[1].decode() if got.startswith(b"HTTP/1.1 ") else "none"
    delta = {k.replace("glint_lingering_", ""): after[k] - before.get(k, 0)
             for k in after if after[k] != before.get(k, 0)}
    discarded = delta.get("discarded_bytes_total", 0)
    per_gib = glint_cpu / (discarded / GIB) if discarded else float("nan")
    return (f"status={status} cut_after_s={state['cut_at'] - state['answer_at']:.2f} "
            f"client_error={state['error']} "
            f"client_sent_after_answer_MiB={(state['sent'] - state['sent_at_answer']) / MIB:.0f} "
            f"glint_cpu_s={glint_cpu:.2f} glint_cpu_s_per_GiB_discarded={per_gib:.3f} "
            f"client_cpu_s={own_cpu:.2f} metrics={delta}")


def anchor_round(base, pid, size):
    image = create(base, "raw")
    with open("/dev/urandom", "rb") as f:
        data = f.read(size)
    before = cpu_seconds(pid)
    status, _ = request(base, "PUT", f"/v2/images/{image}/file", data,
                        {"content-type": "application/octet-stream"})
    spent = cpu_seconds(pid) - before
    return f"status={status} glint_cpu_s={spent:.2f} glint_cpu_s_per_GiB={spent / (size / GIB):.3f}"


def healthcheck_ms(base, count):
    times = []
    for _ in range(count):
        started = time.monotonic()
        request(base, "GET", "/healthcheck")
        times.append((time.monotonic() - started) * 1000)
    return f"p50={statistics.median(times):.1f}ms max={max(times):.1f}ms"


def latency_round(base, host, port, senders, payload):
    alone = healthcheck_ms(base, 100)
    chunk = b"%x\r\n" % len(payload) + payload + b"\r\n"

    def send(image):
        sock = socket.create_connection((host, port))
        try:
            sock.sendall((f"PUT /v2/images/{image}/file HTTP/1.1\r\nHost: {host}\r\n"
                          "Content-Type: application/octet-stream\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n").encode())
            while True:
                sock.sendall(chunk)
        except OSError:
            pass
        sock.close()

    threads = [threading.Thread(target=send, args=(create(base, "qcow2"),)) for _ in range(senders)]
    for t in threads:
        t.start()
    time.sleep(1)  # let them be refused and start lingering
    during = healthcheck_ms(base, 100)
    for t in threads:
        t.join()
    return f"healthcheck alone {alone}; with {senders} endless senders lingering {during}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glint-bin", default=os.path.join(ROOT, "target", "release", "glint"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--anchor-mib", type=int, default=1024)
    ap.add_argument("--latency-senders", type=int, default=0)
    ap.add_argument("--config", action="append", default=[], help="a TOML line, e.g. a=1")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="glint-linger-") as tmp:
        config = os.path.join(tmp, "glint.toml")
        with open(config, "w") as f:
            f.write("\n".join(args.config) + "\n")
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        proc = subprocess.Popen([args.glint_bin, "serve", "--listen", "127.0.0.1:0", "--data-dir",
                                 data, "--config", config], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            line = proc.stdout.readline().strip()
            assert line.startswith("listening on http://"), line
            host, port = line.removeprefix("listening on http://").rsplit(":", 1)
            base = f"http://{host}:{port}"
            print(f"# {args.glint_bin}; config {args.config or 'defaults'}; "
                  f"loadavg {' '.join(open('/proc/loadavg').read().split()[:3])}", flush=True)
            payload = os.urandom(MIB)
            for r in range(1, args.rounds + 1):
                print(f"round {r} endless sender  {endless_round(base, host, int(port), proc.pid, payload)}",
                      flush=True)
                print(f"round {r} accepted upload {anchor_round(base, proc.pid, args.anchor_mib * MIB)}",
                      flush=True)
            if args.latency_senders:
                print(latency_round(base, host, int(port), args.latency_senders, payload), flush=True)
            print(f"# loadavg at end {' '.join(open('/proc/loadavg').read().split()[:3])}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
