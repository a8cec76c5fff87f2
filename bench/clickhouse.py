"""The ClickHouse engine (issue 14) side by side with the memory engine and with the
bench's hand-written SQL in chDB, on bench/run's dataset. See docs/performance.md.

    flock -x /work/wt/bench.lock python3 bench/clickhouse.py --users 1000000
    flock -x /work/wt/bench.lock python3 bench/clickhouse.py --users 100000 --import-only --compare-distributed

Stages (each timed, the load average noted):
  gen        headcount gen, as bench/run (reused when present)
  memory     headcount import into a data directory, then eval: one day of the 100
             segments, the 100-day history of the 20 marked ones
  clickhouse two clickhouse-server (Debian's 18.16) shards on free loopback ports, one
             Distributed table; headcount clickhouse init, import, the same evals (the
             generated SQL logged through HEADCOUNT_CLICKHOUSE_SQL_LOG); parts on disk;
             then each shard's parts merged (OPTIMIZE … FINAL) and the day again
  chdb-gen   the facts streamed from each shard (RowBinary over HTTP) into chDB (a
             current ClickHouse), and the same generated SQL run there (a day's passes
             over parts of the buckets added up as the engine adds them)
  chdb-hand  bench/sql.py's hand-written SQL in chDB on the normalized Parquet of the
             same NDJSON (one query per day, as bench/run)
Every size must agree with the memory engine's (exit 1 otherwise). Results:
bench/results/clickhouse-users-N.json. Needs target/release/headcount
(cargo build --release), duckdb, chdb and pyarrow (pip).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import sql  # noqa: E402

SERVER = "/usr/sbin/clickhouse-server"
CLUSTER = "headcount_bench"
FACTS_COLUMNS = ("workspace Int64, user String, bucket UInt16, time Int64, seq UInt64, sub UInt16, "
                 "type UInt8, name String, kind UInt8, s String, n Float64, d Int64, dn UInt16, "
                 "a Array(String)")


def log(msg):
    bench.log(msg)


class Shards:
    """Two (or n) clickhouse-server processes with a remote_servers cluster of them."""

    def __init__(self, n: int, root: str, max_memory: int):
        self.root = root
        self.procs = []
        ports = [(bench.free_port(), bench.free_port(), bench.free_port()) for _ in range(n)]
        remote = "".join(f"<shard><replica><host>127.0.0.1</host><port>{tcp}</port></replica></shard>"
                         for _, tcp, _ in ports)
        self.urls = []
        for i, (http, tcp, inter) in enumerate(ports):
            d = os.path.join(root, f"shard{i}")
            for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            open(os.path.join(d, "config.xml"), "w").write(f"""<yandex>
  <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/error.log</errorlog><console>0</console></logger>
  <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port>
  <interserver_http_port>{inter}</interserver_http_port><interserver_http_host>127.0.0.1</interserver_http_host>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path><users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size><max_concurrent_queries>50</max_concurrent_queries>
  <remote_servers><{CLUSTER}>{remote}</{CLUSTER}></remote_servers>
</yandex>
""")
            open(os.path.join(d, "users.xml"), "w").write(f"""<yandex>
  <profiles><default><max_memory_usage>{max_memory}</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
""")
            self.procs.append(subprocess.Popen([SERVER, f"--config-file={d}/config.xml"], cwd=d,
                                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))
            self.urls.append(f"http://127.0.0.1:{http}")
        for url in self.urls:
            t = time.time()
            while True:
                try:
                    if self.query(url, "SELECT 1").strip() == b"1":
                        break
                except OSError:
                    pass
                if time.time() - t > 120:
                    raise RuntimeError(f"clickhouse-server at {url} did not start")
                time.sleep(0.3)
        self.version = self.query(self.urls[0], "SELECT version()").decode().strip()

    @staticmethod
    def query(url, q, out=None):
        req = urllib.request.Request(url + "/?wait_end_of_query=1", data=q.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=3600) as r:
            if out is None:
                return r.read()
            shutil.copyfileobj(r, out, 1 << 20)

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def ch_import(b, shards, dd, chargs, database, env=None):
    """headcount import into the ClickHouse workspace of data directory dd; the figures."""
    log(f"clickhouse: import into {database}" + (" (HEADCOUNT_CLICKHOUSE_INSERT=distributed)" if env else ""))
    l0 = bench.loadavg()
    t = time.time()
    res = b.run(b.hc, "--data-dir", dd, "import", "--workspace", "bench", "--json", b.data, *chargs, env=env)
    secs = time.time() - t
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    rows = sum(int(Shards.query(u, f"SELECT count() FROM {database}.facts_local")) for u in shards.urls)
    per_shard = [int(Shards.query(u, f"SELECT count() FROM {database}.facts_local")) for u in shards.urls]
    disk = sum(int(Shards.query(u, "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = "
                                   f"'{database}' AND active")) for u in shards.urls)
    events = b.r["import"]["events"]
    out = {"seconds": round(secs, 3), "facts": summary["facts"],
           "facts_per_second": round(summary["facts"] / secs),
           "events": events, "events_per_second": round(events / secs),
           "rows": rows, "rows_per_shard": per_shard, "bytes_on_disk": disk,
           "bytes_per_row": round(disk / rows, 2), "bytes_per_event": round(disk / events, 2),
           "loadavg_before": l0, "loadavg_after": bench.loadavg()}
    log(f"clickhouse: import {summary['facts']} facts in {secs:.1f}s ({events/secs:,.0f} events/s, "
        f"{summary['facts']/secs:,.0f} facts/s); {disk/2**20:.0f} MiB on disk, rows per shard {per_shard}")
    return out


def finish_import_only(a, r, shards, tmp, work):
    """--import-only: stop the shards, delete the data, write and print the figures."""
    shards.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    out = os.path.join(HERE, "results", f"clickhouse-import-users-{a.users}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    json.dump(r, open(out, "w"), indent=1)
    m, c = r["memory"]["import"], r["clickhouse"]["import"]
    print(f"\nClickHouse import bench: {a.users:,} users, {c['events']:,} events, {c['facts']:,} facts; "
          f"build {r['build']['commit']}; 18.16 = {r['clickhouse']['server']}; load average {r['loadavg']}")
    print("| import | events/s | facts/s | seconds | load average before |")
    print("|---|---|---|---|---|")
    print(f"| memory engine (data directory) | {m['events_per_second']:,} | | {m['seconds']} | {m['loadavg_before']} |")
    print(f"| ClickHouse, each shard's local table | {c['events_per_second']:,} | {c['facts_per_second']:,} "
          f"| {c['seconds']} | {c['loadavg_before']} |")
    if "clickhouse_distributed" in r:
        d = r["clickhouse_distributed"]
        print(f"| ClickHouse, through the Distributed table | {d['events_per_second']:,} | "
              f"{d['facts_per_second']:,} | {d['seconds']} | {d['loadavg_before']} |")
    print(f"results: {out}")
    return 0


def parse_sizes(tsv: str, instants: int, targets: int):
    counts = [[0] * targets for _ in range(instants)]
    for line in tsv.splitlines():
        if line.strip():
            k, *row = (int(x) for x in line.split("\t"))
            counts[k - 1] = row
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--history-sample", type=int, default=1,
                    help="hand-written SQL: run every Nth day of the history, time multiplied back")
    ap.add_argument("--max-memory", type=int, default=8_000_000_000,
                    help="max_memory_usage of each 18.16 shard, bytes")
    ap.add_argument("--keep", action="store_true", help="keep bench/work/users-N/ (the dataset)")
    ap.add_argument("--no-history", action="store_true",
                    help="one day of the 100 segments only (no 100-day history): a 1M run in ~30 min")
    ap.add_argument("--import-only", action="store_true",
                    help="only the imports (memory engine, then ClickHouse): no evals, no chDB")
    ap.add_argument("--compare-distributed", action="store_true",
                    help="with --import-only: also import through the Distributed table "
                         "(HEADCOUNT_CLICKHOUSE_INSERT=distributed), right after")
    a = ap.parse_args()
    ns = argparse.Namespace(users=a.users, days=120, events_per_user=30.0, history_days=100,
                            history_sample=a.history_sample, reuse_headcount=False, reuse_sql=False,
                            skip=[])
    b = bench.Bench(ns)
    r = {"users": a.users, "machine": bench.machine(), "build": b.r["build"], "loadavg": {}}
    mismatches = []
    work = b.work
    tmp = tempfile.mkdtemp(prefix="hc-ch-bench-", dir=work)
    shards = None
    try:
        b.gen()
        # -- memory engine
        r["loadavg"]["memory"] = bench.loadavg()
        b.hc_import()
        if a.import_only:
            r["memory"] = {"import": b.r["import"]}
        else:
            b.hc_eval()
            r["memory"] = {"import": b.r["import"], "eval": b.r["headcount"]}
        if not a.import_only:
            mem = b.sizes["headcount"]
            hist = b.history_entries()
            day_file = b.filters_file("segments.json", b.entries)
            hist_file = b.filters_file("history.json", hist)
        # -- ClickHouse engine
        r["loadavg"]["clickhouse"] = bench.loadavg()
        log("clickhouse: starting two 18.16 shards")
        shards = Shards(2, os.path.join(tmp, "shards"), a.max_memory)
        urls = ",".join(shards.urls)
        chargs = ["--clickhouse-url", urls, "--clickhouse-cluster", CLUSTER]
        dd = os.path.join(tmp, "data")
        b.run(b.hc, "--data-dir", dd, "clickhouse", "init", *chargs)
        b.run(b.hc, "--data-dir", dd, "workspaces", "create", "bench", "--engine", "clickhouse")
        r["clickhouse"] = {"server": shards.version,
                           "import": ch_import(b, shards, dd, chargs, "headcount")}
        if a.import_only:
            if a.compare_distributed:
                # The same import through the Distributed table (insert_distributed_sync),
                # into a database of its own, right after.
                r["loadavg"]["clickhouse-distributed"] = bench.loadavg()
                dd2 = os.path.join(tmp, "data-distributed")
                chargs2 = chargs + ["--clickhouse-database", "headcount_distributed"]
                b.run(b.hc, "--data-dir", dd2, "clickhouse", "init", *chargs2)
                b.run(b.hc, "--data-dir", dd2, "workspaces", "create", "bench", "--engine", "clickhouse")
                env = dict(os.environ, HEADCOUNT_CLICKHOUSE_INSERT="distributed")
                r["clickhouse_distributed"] = ch_import(b, shards, dd2, chargs2, "headcount_distributed", env)
            r["loadavg"]["end"] = bench.loadavg()
            return finish_import_only(a, r, shards, tmp, work)
        shards.query(shards.urls[0], "SYSTEM DROP MARK CACHE")
        ch_sizes = {}
        logs = {}
        kinds = ("day",) if a.no_history else ("day", "history")
        for kind, f, extra in (("day", day_file, ["--day", b.day.isoformat()]),
                               ("history", hist_file, ["--from", b.history_days[0].isoformat(),
                                                       "--to", b.history_days[-1].isoformat()]))[:len(kinds)]:
            logs[kind] = os.path.join(tmp, f"{kind}.sql.jsonl")
            log(f"clickhouse: eval {kind}")
            env = dict(os.environ, HEADCOUNT_CLICKHOUSE_SQL_LOG=logs[kind])
            res = json.loads(b.run(b.hc, "--data-dir", dd, "eval", "--workspace", "bench", "--filters", f,
                                   *extra, *chargs, env=env).stdout)
            r["clickhouse"][f"{kind}_seconds"] = res["eval_seconds"]
            ch_sizes[kind] = {x["name"]: x["sizes"] for x in res["results"]}
            log(f"clickhouse: {kind} {res['eval_seconds']:.2f}s")
        # The day again once each shard's parts are merged into one (OPTIMIZE … FINAL):
        # the times above are right after the import, its parts not yet merged, which a
        # daily computation rarely meets.
        parts = lambda: [int(Shards.query(u, "SELECT count() FROM system.parts WHERE active AND "
                                             "database = 'headcount' AND table = 'facts_local'"))
                         for u in shards.urls]
        r["clickhouse"]["parts_after_import"] = parts()
        log(f"clickhouse: merging each shard's parts ({r['clickhouse']['parts_after_import']})")
        merges = [threading.Thread(target=Shards.query, args=(u, "OPTIMIZE TABLE headcount.facts_local FINAL"))
                  for u in shards.urls]
        t = time.time()
        [m.start() for m in merges]
        [m.join() for m in merges]
        r["clickhouse"]["merge_seconds"] = round(time.time() - t, 1)
        r["clickhouse"]["parts_merged"] = parts()
        res = json.loads(b.run(b.hc, "--data-dir", dd, "eval", "--workspace", "bench", "--filters", day_file,
                               "--day", b.day.isoformat(), *chargs).stdout)
        r["clickhouse"]["day_seconds_merged"] = res["eval_seconds"]
        if {x["name"]: x["sizes"] for x in res["results"]} != ch_sizes["day"]:
            mismatches.append({"engine": "clickhouse", "kind": "day, parts merged", "segment": "*"})
        log(f"clickhouse: day {res['eval_seconds']:.2f}s with the parts merged "
            f"({r['clickhouse']['parts_merged']} parts, merged in {r['clickhouse']['merge_seconds']}s)")
        # -- the generated SQL in chDB
        r["loadavg"]["chdb-gen"] = bench.loadavg()
        from chdb import session
        s = session.Session(os.path.join(tmp, "chdb"))
        # As the engine's HTTP settings (a large query, the users' values of a regex).
        s.query("SET max_query_size = 268435456")
        s.query("SET max_ast_elements = 10000000")
        s.query("SET max_expanded_ast_elements = 10000000")
        s.query("CREATE DATABASE IF NOT EXISTS headcount")
        s.query(f"CREATE TABLE headcount.facts ({FACTS_COLUMNS}) ENGINE = MergeTree "
                "ORDER BY (workspace, bucket, user, seq, sub)")
        deletion_columns = "workspace Int64, user String, seq UInt64"
        s.query(f"CREATE TABLE headcount.deletions_local ({deletion_columns}) "
                "ENGINE = MergeTree ORDER BY (workspace, user, seq)")
        # Each shard's rows streamed over its HTTP interface (RowBinary), no file between:
        # at 10M users the facts are ~30 GB of RowBinary.
        log("chdb-gen: copy the facts from the shards")
        t = time.time()
        for url in shards.urls:
            for table, target, columns in (("facts_local", "facts", FACTS_COLUMNS),
                                           ("deletions_local", "deletions_local", deletion_columns)):
                q = urllib.parse.quote(f"SELECT * FROM headcount.{table} FORMAT RowBinary")
                s.query(f"INSERT INTO headcount.{target} SELECT * FROM "
                        f"url('{url}/?query={q}', RowBinary, '{columns}')")
        shards.stop()
        shards = None
        s.query("OPTIMIZE TABLE headcount.facts FINAL")
        gen = {"version": s.query("SELECT version()", "TabSeparated").bytes().decode().strip(),
               "load_seconds": round(time.time() - t, 3)}
        gen_sizes = {}
        for kind in kinds:
            queries = [json.loads(l) for l in open(logs[kind])]
            names = list(ch_sizes[kind])
            days = sorted(next(iter(ch_sizes[kind].values())).keys())
            # The last query of an eval counts the users as of now: not timed.
            sized = [q for q in queries if q["targets"] == len(names)]
            best = None
            for _ in range(2 if kind == "day" else 1):
                grid = []
                t = time.time()
                for q in sized:
                    for name, value in q.get("settings", {}).items():  # as the engine sends them
                        s.query(f"SET {name} = {value}")
                    res = s.query(q["sql"], "TabSeparated")
                    sizes = parse_sizes(res.bytes().decode(), q["instants"], q["targets"])
                    if q.get("pass", 0) == 0:
                        grid += sizes
                    else:  # a later pass over other buckets of the same instants: added up
                        part = grid[-q["instants"]:]
                        for row, more in zip(part, sizes):
                            row[:] = [a + b for a, b in zip(row, more)]
                best = min(best or 1e99, time.time() - t)
            gen[f"{kind}_seconds"] = round(best, 3)
            gen_sizes[kind] = {n: {d: grid[i][j] for i, d in enumerate(days)} for j, n in enumerate(names)}
            log(f"chdb-gen: {kind} {best:.2f}s")
        s.close()
        r["chdb_generated"] = gen
        # -- the hand-written SQL in chDB
        r["loadavg"]["chdb-hand"] = bench.loadavg()
        norm = os.path.join(work, "normalized")
        log("chdb-hand: NDJSON -> normalized Parquet")
        t = time.time()
        if not os.path.exists(os.path.join(norm, "done.json")):
            shutil.rmtree(norm, ignore_errors=True)
            sql.normalize_duckdb(b.data, norm)
            json.dump({}, open(os.path.join(norm, "done.json"), "w"))
        e = sql.ChDB()
        t = time.time()
        e.load(norm)
        hand = {"version": e.version, "load_seconds": round(time.time() - t, 3)}
        best = None
        for _ in range(2):
            t = time.time()
            day = sql.sizes(e, b.entries, [b.day], b.cal, combined=True)
            best = min(best or 1e99, time.time() - t)
        hand["day_seconds"] = round(best, 3)
        h = {}
        if not a.no_history:
            run_days = b.history_days[::a.history_sample]
            t = time.time()
            h = sql.sizes(e, hist, run_days, b.cal, combined=True)
            hand["history_seconds"] = round((time.time() - t) * len(b.history_days) / len(run_days), 3)
            hand["history_days_run"] = len(run_days)
        log(f"chdb-hand: day {hand['day_seconds']:.2f}s, history {hand.get('history_seconds', '-')}s")
        del e
        r["chdb_hand"] = hand
        r["loadavg"]["end"] = bench.loadavg()
        # -- every size must be the memory engine's
        for engine, got in (("clickhouse", ch_sizes), ("chdb_generated", gen_sizes),
                            ("chdb_hand", {"day": day, "history": h})):
            for kind in kinds:
                for name, per_day in got[kind].items():
                    for d, v in per_day.items():
                        want = mem[kind].get(name, {}).get(d)
                        if want != v:
                            mismatches.append({"engine": engine, "kind": kind, "segment": name,
                                               "day": d, "memory": want, engine: v})
        r["mismatches"] = mismatches
    finally:
        if shards:
            shards.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        out = os.path.join(HERE, "results", f"clickhouse-users-{a.users}.json")
        if not a.import_only:
            os.makedirs(os.path.dirname(out), exist_ok=True)
            json.dump(r, open(out, "w"), indent=1)
    m, c, g, hd = r["memory"], r["clickhouse"], r["chdb_generated"], r["chdb_hand"]
    print(f"\nClickHouse engine bench: {a.users:,} users, {c['import']['events']:,} events, "
          f"{c['import']['facts']:,} facts; build {r['build']['commit']}; 18.16 = {c['server']}, "
          f"chDB = {g['version']}; load average {r['loadavg']}")
    print("| figure | ClickHouse engine (2 shards, 18.16) | generated SQL in chDB | hand-written SQL in chDB | memory engine |")
    print("|---|---|---|---|---|")
    print(f"| import, events/s | {c['import']['events_per_second']:,} | | | {m['import']['events_per_second']:,} |")
    print(f"| one day, 100 segments, s | {c['day_seconds']:.2f} | {g['day_seconds']:.2f} | {hd['day_seconds']:.2f} | {m['eval']['day_seconds']:.3f} |")
    print(f"| one day, each shard's parts merged, s | {c['day_seconds_merged']:.2f} | | | |")
    if not a.no_history:
        print(f"| 100 days × 20 segments, s | {c['history_seconds']:.2f} | {g['history_seconds']:.2f} | {hd['history_seconds']:.2f} | {m['eval']['history_seconds']:.3f} |")
    print(f"| bytes on disk per event | {c['import']['bytes_per_event']} ({c['import']['bytes_per_row']} per row) | | | |")
    print(f"\n{len(mismatches)} sizes differ from the memory engine's")
    for x in mismatches[:20]:
        print("  ", json.dumps(x))
    print(f"results: {out}")
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
