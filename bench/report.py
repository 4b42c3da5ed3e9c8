#!/usr/bin/env python3
"""Turns bench/run.sh's raw results (results.tsv, meta.txt) into the markdown report.

usage: report.py results.tsv meta.txt
"""
import statistics
import sys

NAMES = {
    "upstream": "upstream direct (plain HTTP, ceiling)",
    "nginx": "nginx Basic (TLS + auth_basic + proxy_pass)",
    "sg-basic": "secretgate client_secret_basic",
    "sg-hashed": "secretgate client_secret_basic, argon2id-hashed secret (warm cache)",
    "sg-limited": "secretgate client_secret_basic, client under a rate_limit (never reached)",
    "sg-post": "secretgate client_secret_post",
    "sg-jwt": "secretgate client_secret_jwt",
    "sg-es256": "secretgate client_secret_basic, internal header ES256",
    "sg-eddsa": "secretgate client_secret_basic, internal header EdDSA",
    "base-basic": "baseline secretgate client_secret_basic (BASELINE_BIN)",
    "redis-basic": "secretgate client_secret_basic, state.backend: redis",
    "redis-post": "secretgate client_secret_post, state.backend: redis",
    "redis-jwt": "secretgate client_secret_jwt, state.backend: redis (jti in Redis)",
}
ORDER = list(NAMES)
BAD_KEYS = ("non2xx", "exhausted", "connect", "read", "write", "timeout")


def load(path):
    rows = []
    for line in open(path).read().splitlines()[1:]:
        phase, rnd, scen, fields = line.split("\t")
        d = dict(kv.split("=", 1) for kv in fields.split())
        d.update(phase=phase, round=int(rnd), scenario=scen)
        d["rps"] = float(d["rps"])
        d["bad"] = sum(int(d[k]) for k in BAD_KEYS)
        rows.append(d)
    return rows


def meta(path):
    out = {}
    for line in open(path).read().splitlines():
        k, _, v = line.partition("=")
        out[k] = v
    return out


def fmt(x, nd=0):
    return f"{x:,.{nd}f}"


def mib(kib):
    return f"{int(kib) / 1024:.1f} MiB" if kib else "n/a"


def main():
    rows = load(sys.argv[1])
    m = meta(sys.argv[2])
    out = []
    w = out.append
    load_rows = [r for r in rows if r["phase"] == "load"]
    rounds = sorted({r["round"] for r in load_rows})
    by = {(r["round"], r["scenario"]): r for r in load_rows}

    w(f"## Load benchmark ({m.get('date', '')}, git {m.get('git', '?')})")
    w("")
    w(f"Machine: {m.get('nproc')} CPUs, {m.get('cpu')}, kernel {m.get('kernel')}; "
      f"nginx {m.get('nginx_version')}, wrk {m.get('wrk_version')}, {m.get('rustc')}"
      f"{', Redis ' + m['redis_version'] if 'redis_version' in m else ''}. "
      f"Load average before: {m.get('load_before')}, after: {m.get('load_after')}.")
    w("")
    w(f"Settings: `{m.get('settings')}`. TLS negotiated: nginx `{m.get('tls_nginx')}`, "
      f"secretgate `{m.get('tls_secretgate')}`. secretgate threads in total: {m.get('sg_threads')}.")
    w("")
    w("### Throughput (closed loop, keep-alive; median of the valid rounds)")
    w("")
    w("| scenario | median req/s | min | max | valid rounds | per round |")
    w("|---|---:|---:|---:|---:|---|")
    med = {}
    for s in ORDER:
        rs = [by[(r, s)] for r in rounds if (r, s) in by]
        if not rs:
            continue
        ok = [x["rps"] for x in rs if x["bad"] == 0]
        per = " / ".join(fmt(x["rps"]) + ("" if x["bad"] == 0 else "✗") for x in rs)
        if ok:
            med[s] = statistics.median(ok)
            w(f"| {NAMES[s]} | **{fmt(med[s])}** | {fmt(min(ok))} | {fmt(max(ok))} | "
              f"{len(ok)}/{len(rs)} | {per} |")
        else:
            w(f"| {NAMES[s]} | invalid | | | 0/{len(rs)} | {per} |")
    w("")
    w("✗ = invalid run (non-2xx responses, socket errors or an exhausted assertion pool).")
    w("")

    def ratio(a, b):
        per = []
        for r in rounds:
            x, y = by.get((r, a)), by.get((r, b))
            if x and y and x["bad"] == 0 and y["bad"] == 0 and y["rps"] > 0:
                per.append(x["rps"] / y["rps"])
        return per

    w("### Ratios (within each round, then the median over rounds)")
    w("")
    w("| ratio | median | per round | goal |")
    w("|---|---:|---|---|")
    goals = {
        ("sg-basic", "nginx"): (">= 1.00", 1.0),
        ("sg-jwt", "sg-basic"): (">= 0.90", 0.9),
        ("sg-post", "sg-basic"): (">= 1.00", 1.0),
        ("sg-hashed", "sg-basic"): (">= 0.95", 0.95),
        ("sg-limited", "sg-basic"): (">= 0.97", 0.97),
        ("redis-jwt", "sg-jwt"): (">= 0.85", 0.85),
        ("redis-basic", "sg-basic"): (">= 0.97", 0.97),
        ("redis-post", "sg-post"): (">= 0.97", 0.97),
        ("sg-es256", "sg-basic"): ("", None),
        ("sg-eddsa", "sg-basic"): ("", None),
        ("sg-basic", "base-basic"): ("", None),
        ("sg-basic", "upstream"): ("", None),
        ("nginx", "upstream"): ("", None),
    }
    verdicts = []
    for (a, b), (text, target) in goals.items():
        per = ratio(a, b)
        if not per:
            continue
        mr = statistics.median(per)
        verdict = ""
        if target is not None:
            verdict = f"{text}: {'met' if mr >= target else 'NOT met'}"
            verdicts.append((f"{a} / {b}", mr, verdict))
        w(f"| {a} / {b} | **{mr:.3f}** | {' / '.join(f'{x:.3f}' for x in per)} | {verdict} |")
    w("")

    if any("cpu_user_us" in by[k] for k in by):
        w("### CPU per request (the serving process only: nginx workers, or secretgate; "
          "median over the load rounds)")
        w("")
        with_redis = any("redis_cpu_us" in by[k] for k in by)
        w("| scenario | user µs | system µs | total µs | CPU per 1,000 req/s |"
          + (" + redis-server µs |" if with_redis else ""))
        w("|---|---:|---:|---:|---:|" + ("---:|" if with_redis else ""))
        for s in ORDER:
            rs = [by[(r, s)] for r in rounds if (r, s) in by and "cpu_user_us" in by[(r, s)]]
            if not rs:
                continue
            u = statistics.median(float(x["cpu_user_us"]) for x in rs)
            k = statistics.median(float(x["cpu_sys_us"]) for x in rs)
            t = statistics.median(float(x["cpu_user_us"]) + float(x["cpu_sys_us"]) for x in rs)
            extra = ""
            if with_redis:
                rr = [float(x["redis_cpu_us"]) for x in rs if "redis_cpu_us" in x]
                extra = f" {statistics.median(rr):.1f} |" if rr else " |"
            # t µs per request at 1,000 requests a second: t ms of CPU per second.
            w(f"| {NAMES[s]} | {u:.1f} | {k:.1f} | {t:.1f} | {t / 1000:.3f} cores |{extra}")
        w("")
        w("System time includes the kernel's loopback delivery to the peer (the sender's "
          "softirq), so it is shared work, not only the server's own."
          + (" For the redis scenarios the gateway's columns are secretgate-redis alone; "
             "redis-server's own CPU (user + system) per request is the last column."
             if with_redis else ""))
        w("")

    lat = [r for r in rows if r["phase"] == "latency"]
    if lat:
        w(f"### Latency at a fixed rate below saturation (~{m.get('rate')} req/s offered: "
          f"{m.get('lat_connections')} connections, each waiting {m.get('lat_delay_ms')} ms "
          f"after every response)")
        w("")
        w("| scenario | achieved req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | valid |")
        w("|---|---:|---:|---:|---:|---:|---:|---|")
        for s in ORDER:
            for r in lat:
                if r["scenario"] == s:
                    w(f"| {NAMES[s]} | {fmt(r['rps'])} | {r['lat_p50_us']} | {r['lat_p90_us']} | "
                      f"{r['lat_p99_us']} | {r['lat_p999_us']} | {r['lat_max_us']} | "
                      f"{'yes' if r['bad'] == 0 else 'NO (' + str(r['bad']) + ' errors)'} |")
        w("")

    invalid = [r for r in rows if r["bad"] > 0]
    w("### Errors")
    w("")
    if invalid:
        for r in invalid:
            w(f"- {r['phase']} round {r['round']} {r['scenario']}: non2xx={r['non2xx']} "
              f"(first status {r['first_bad_status']}), exhausted={r['exhausted']}, "
              f"socket connect/read/write/timeout={r['connect']}/{r['read']}/{r['write']}/{r['timeout']}")
    else:
        w("- every response in every run (warm-up included) was 2xx; no socket errors; "
          "no assertion pool ran out")
    jwt = [r for r in rows if r["scenario"] in ("sg-jwt", "redis-jwt")]
    if jwt:
        w(f"- jwt assertions: {sum(int(r['minted']) for r in jwt):,} minted for "
          f"{sum(int(r['requests']) for r in jwt):,} completed jwt requests "
          f"(pool per run = 1.5x the expected count + half a second's + 2000; max used/minted "
          f"{max(int(r['requests']) / int(r['minted']) for r in jwt):.2f})")
    w(f"- logs during the measured runs (target/bench/log-check.txt): nginx error logs "
      f"{m.get('nginx_error_lines')} lines at error level or worse, "
      f"{m.get('nginx_warn_lines')} warnings; secretgate {m.get('sg_warn_error_lines')} "
      f"WARN/ERROR lines ({int(m.get('sg_log_bytes', 0)) / 1e6:.0f} MB of log in all)")
    if "sg_redis_warn_error_lines" in m:
        w(f"- secretgate-redis: {m['sg_redis_warn_error_lines']} WARN/ERROR lines; "
          f"state errors {m.get('redis_state_errors', '?')}, replay rejections "
          f"{m.get('redis_replay_rejections', '?')} (the smoke tests' deliberate replay is one)")
    if "redis_commands" in m:
        cmds = dict(kv.split("=", 1) for kv in m["redis_commands"].split())
        measured = [r for r in rows if r["scenario"] == "redis-jwt" and r["phase"] in ("load", "latency")]
        w(f"- Redis during the rounds and fixed-rate runs: {int(cmds.get('set', 0)):,} SET "
          f"(replay records; redis-jwt completed {sum(int(r['requests']) for r in measured):,} "
          f"requests, wrk does not count the ones cut off at the end of a run), "
          f"{int(cmds.get('mget', 0)):,} MGET (throttle checks: 0 when no source is suspect), "
          f"all commands: {m['redis_commands'] or 'none'}; memory used at the end "
          f"{m.get('redis_used_memory', '?')}")
    if "hash_verifications" in m:
        w(f"- hashed client: {m['hash_verifications']} argon2id verification(s) in the whole run "
          f"(the smoke test's), {int(m.get('hash_cache_hits') or 0):,} verify-cache hits")
    if "rate_limited" in m:
        w(f"- rate-limited client: {m['rate_limited']} request(s) refused with 429 "
          f"(0: every sg-limited request took a token and went through)")
    if "sg_access_lines" in m:
        redis_access = ""
        if "sg_redis_access_lines" in m:
            redis_access = (f"; secretgate-redis {int(m['sg_redis_access_lines']):,} lines, "
                            f"not 200: {m['sg_redis_access_non200'] or 'none'}")
        w(f"- access logs: secretgate {int(m['sg_access_lines']):,} lines, not 200: "
          f"{m['sg_access_non200'] or 'none'}{redis_access}; nginx "
          f"{int(m['nginx_access_lines']):,} lines, "
          f"not 200: {m['nginx_access_non200'] or 'none'} (499 = wrk abandoned the request "
          f"when a run's time was up)")
    w("")

    w("### secretgate memory (RSS)")
    w("")
    w("| when | RSS |")
    w("|---|---:|")
    for k, label in [
        ("rss_start_kib", "after start, idle"),
        ("rss_after_warmup_kib", "after warm-up"),
        ("rss_after_rounds_kib", "after the load rounds"),
        ("rss_after_latency_kib", "after the fixed-rate runs"),
        ("rss_end_kib", "end"),
        ("rss_hwm_kib", "peak (VmHWM)"),
        ("rss_redis_instance_kib", "secretgate-redis after the fixed-rate runs"),
    ]:
        if k in m:
            w(f"| {label} | {mib(m[k])} |")
    if "soak_rss_kib" in m:
        samples = m["soak_rss_kib"].split()
        w("")
        w(f"Soak (secretgate Basic at full load, RSS every 5 s): "
          f"{' → '.join(mib(s) for s in samples)}")
    w("")
    if verdicts:
        w("### Goals")
        w("")
        for name, mr, verdict in verdicts:
            w(f"- {name} = {mr:.3f} ({verdict})")
        w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
