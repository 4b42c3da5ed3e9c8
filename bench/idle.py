#!/usr/bin/env python3
"""Idle kept-alive TLS connections against secretgate, with the gateway's RSS sampled.

    bench/idle.py --cafile ca.crt --pid PID [--connections 1000] [--hold 5] HOST PORT

Opens N TLS connections (SNI and Host `localhost`, ALPN http/1.1, the CA in --cafile
trusted), sends one small HTTP/1.1 keep-alive request on each and reads the whole
response (by its Content-Length), keeps every connection open and idle for --hold
seconds, then closes them all. With --pid, samples VmRSS (and RssAnon, the fd count) of
that process from /proc at: baseline (before connecting), idle (all N answered),
idle_after_hold, and closed_Ns for each N in --after-close (seconds after the closes);
also AnonHugePages (transparent huge pages) from /proc/PID/smaps_rollup.

stdout: one JSON object (connections, established, failed, errors, dropped_during_hold
(answered, then closed by the server while idle), rss_kib, ...,
per_connection_kib = (idle - baseline) / established). stderr: progress. Exit status 1
if any connection failed (to connect, to be answered with a 2xx, or to stay open through
the hold): failures are counted in the JSON, never dropped. Standard library only.
"""

import argparse
import asyncio
import collections
import json
import os
import resource
import ssl
import sys
import time

T0 = time.monotonic()


def log(msg):
    print(f"[idle.py {time.monotonic() - T0:7.2f}s] {msg}", file=sys.stderr, flush=True)


def proc_status(pid):
    """VmRSS, RssAnon, VmHWM, AnonHugePages (KiB) and the fd count of pid (None: no --pid)."""
    if pid is None:
        return None
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "VmHWM"):
                out[key] = int(rest.split()[0])
    try:
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        # Transparent huge pages: the allocator's madvise(MADV_HUGEPAGE) makes the kernel
        # back its arena with 2 MiB pages, which RSS counts whole.
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("AnonHugePages:"):
                    out["AnonHugePages"] = int(line.split()[1])
    except OSError:  # another user's process: RSS is readable, these are not
        out.setdefault("fds", None)
    return out


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
        log(f"RLIMIT_NOFILE soft limit raised to {soft}")
    if soft != resource.RLIM_INFINITY and soft < need:
        log(f"WARNING: RLIMIT_NOFILE is {soft} (hard limit), {need} wanted: connections will fail")


class Failure(Exception):
    """A connection that did not get its answer: the reason is the message."""


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise Failure(f"bad status line {lines[0]!r}")
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    if "content-length" not in headers:
        raise Failure("response without Content-Length")
    body = await reader.readexactly(int(headers["content-length"]))
    if "close" in headers.get("connection", "").lower():
        raise Failure("server answered Connection: close")
    return status, len(body)


async def open_one(i, args, ctx, request):
    reader, writer = await asyncio.open_connection(
        args.host, args.port, ssl=ctx, server_hostname=args.sni,
        ssl_handshake_timeout=args.timeout)
    try:
        writer.write(request)
        await writer.drain()
        status, _ = await read_response(reader)
    except BaseException:
        writer.transport.abort()
        raise
    if not 200 <= status < 300:
        writer.transport.abort()
        raise Failure(f"HTTP {status}")
    return reader, writer


async def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--cafile", required=True, help="CA certificate (PEM) to trust")
    p.add_argument("--sni", default="localhost", help="server name (SNI, Host; default localhost)")
    p.add_argument("--path", default="/healthcheck-idle", help="unprotected path the gateway forwards")
    p.add_argument("-n", "--connections", type=int, default=1000)
    p.add_argument("--hold", type=float, default=5.0, help="seconds idle before closing (default 5)")
    p.add_argument("--pid", type=int, help="process whose /proc/PID/status VmRSS is sampled")
    p.add_argument("--concurrency", type=int, default=50,
                   help="connections being set up at once (default 50); this also bounds how "
                        "many upstream connections the gateway's pool opens")
    p.add_argument("--timeout", type=float, default=15.0, help="per-connection setup timeout, s")
    p.add_argument("--settle", type=float, default=1.0,
                   help="seconds to wait after the last answer before the idle sample (default 1)")
    p.add_argument("--after-close", default="1,2,5,10",
                   help="seconds after closing at which RSS is sampled (default 1,2,5,10)")
    args = p.parse_args()
    after_close = sorted(float(s) for s in args.after_close.split(",") if s)
    raise_nofile(args.connections + 64)

    ctx = ssl.create_default_context(cafile=args.cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.sni}\r\n"
               f"User-Agent: secretgate-bench-idle\r\n\r\n").encode()

    samples, extra = {}, collections.defaultdict(dict)

    def sample(name):
        st = proc_status(args.pid)
        if st is None:
            return
        samples[name] = st["VmRSS"]
        extra["rss_anon_kib"][name] = st.get("RssAnon")
        extra["anon_huge_kib"][name] = st.get("AnonHugePages")
        extra["fds"][name] = st["fds"]
        log(f"sample {name}: VmRSS {st['VmRSS']} KiB, RssAnon {st.get('RssAnon')} KiB, "
            f"AnonHugePages {st.get('AnonHugePages')} KiB, fds {st['fds']}")

    sample("baseline")
    errors = collections.Counter()
    conns = []
    sem = asyncio.Semaphore(args.concurrency)
    done = 0

    async def guarded(i):
        nonlocal done
        async with sem:
            try:
                conn = await asyncio.wait_for(open_one(i, args, ctx, request), args.timeout)
                conns.append(conn)
            except asyncio.TimeoutError:
                errors["timeout"] += 1
            except Failure as e:
                errors[str(e)] += 1
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, ValueError) as e:
                errors[f"{type(e).__name__}: {e}"[:120]] += 1
            done += 1
            if done % 100 == 0 or done == args.connections:
                log(f"{done}/{args.connections} set up ({len(conns)} answered, "
                    f"{sum(errors.values())} failed)")

    t_setup = time.monotonic()
    await asyncio.gather(*(guarded(i) for i in range(args.connections)))
    setup_s = time.monotonic() - t_setup
    established = len(conns)
    log(f"{established} connections open and answered in {setup_s:.1f}s, "
        f"{sum(errors.values())} failed: {dict(errors) or 'none'}")
    await asyncio.sleep(args.settle)
    sample("idle")

    log(f"holding {established} idle connections for {args.hold:g}s")
    await asyncio.sleep(args.hold)
    # A connection the server closed (or wrote to) while idle has seen EOF or data: the
    # transport keeps reading in the background, so no read is needed to notice.
    dropped = sum(1 for r, _ in conns if r.at_eof() or len(r._buffer) > 0)
    if dropped:
        log(f"WARNING: {dropped} connections were closed by the server during the hold")
    sample("idle_after_hold")

    log(f"closing {established} connections")
    t_close = time.monotonic()
    for _, w in conns:
        w.close()

    async def closed(w):
        try:
            await asyncio.wait_for(w.wait_closed(), 5)
        except (OSError, ssl.SSLError, asyncio.TimeoutError):
            w.transport.abort()

    await asyncio.gather(*(closed(w) for _, w in conns))
    log(f"closed in {time.monotonic() - t_close:.2f}s")
    for s in after_close:
        await asyncio.sleep(max(0.0, t_close + s - time.monotonic()))
        sample(f"closed_{s:g}s")

    failed = sum(errors.values())
    out = {
        "connections": args.connections,
        "established": established,
        "failed": failed,
        "errors": dict(errors),
        "dropped_during_hold": dropped,
        "hold_s": args.hold,
        "setup_s": round(setup_s, 2),
        "rss_kib": samples,
    }
    if samples:
        out["per_connection_kib"] = (round((samples["idle"] - samples["baseline"]) / established, 2)
                                     if established else None)
        out["rss_anon_kib"] = extra["rss_anon_kib"]
        out["anon_huge_kib"] = extra["anon_huge_kib"]
        out["fds"] = extra["fds"]
        out["hwm_kib"] = proc_status(args.pid)["VmHWM"]
    print(json.dumps(out))
    return 1 if failed or dropped else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
