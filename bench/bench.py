"""headcount side by side with DuckDB and chDB (ClickHouse). Run through bench/run.

Stages (each timed; see docs/performance.md for what bounds each figure):
  gen       headcount gen: the seeded dataset, with a fixed --end (reused when present)
  import    headcount import into a fresh data directory (durable), events/s
  eval      headcount eval: one day of the 100 segments; 100 days of the 20 marked ones
  sql       NDJSON -> normalized Parquet (DuckDB's JSON reader), then load into DuckDB and
            chDB, and the same sizes as SQL (bench/sql.py: written from segments.md)
  compare   every size must agree across the three engines (else the run FAILS)
  edge      bench/edge.py: hand-written corner cases, three engines, two time zones
  serve     headcount serve: resident memory after loading; segments created through
            POST /segments/create; GET /segments/data_series under wrk, against a
            do-nothing ceiling server (bench/ceiling); POST /users/track with trackload;
            then, the server stopped, `headcount snapshot` as a whole process (one day of
            50 segments; 40 days of the 20 history segments) against DuckDB's load plus
            the same queries
"""

from __future__ import annotations

import argparse
import hashlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import edge  # noqa: E402
import sql  # noqa: E402

END = "2026-11-01T00:00:00Z"  # fixed: the data ends here, so runs are reproducible
SEED = 42
SNAPSHOT_SEGMENTS = 50  # the one-day whole-process snapshot
SNAPSHOT_DAYS = 40  # the long snapshot, of the 20 history segments


def log(msg: str):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> float:
    return float(open("/proc/loadavg").read().split()[0])


def machine() -> dict:
    cpu = "?"
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            cpu = l.split(":", 1)[1].strip()
            break
    mem = 0
    for l in open("/proc/meminfo"):
        if l.startswith("MemTotal"):
            mem = int(l.split()[1]) * 1024
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem / 2**30, 1),
            "kernel": platform.release(), "python": platform.python_version()}


def build_info(hc: str) -> dict:
    git = lambda *a: subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True).stdout.strip()
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "worktree_changes": len(git("status", "--porcelain", "--untracked-files=no").splitlines()),
            "binary_mtime": dt.datetime.fromtimestamp(os.path.getmtime(
                os.path.join(ROOT, "target", "release", "headcount")), dt.timezone.utc).isoformat(timespec="seconds"),
            "version": subprocess.run([hc, "--version"], capture_output=True, text=True).stdout.strip()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1]) * 1024
    return 0


def http(method, url, key=None, body=None, timeout=600):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# ---------------------------------------------------------------------------------------

class Bench:
    def __init__(self, a):
        self.a = a
        self.tools = os.path.join(HERE, "target", "release")
        self.work = os.path.join(HERE, "work", f"users-{a.users}")
        os.makedirs(self.work, exist_ok=True)
        # A copy of the binary: the whole run uses one build, even if target/ is rebuilt
        # meanwhile (a data directory is read by the build that wrote it).
        self.hc = os.path.join(self.work, "headcount")
        shutil.copy2(os.path.join(ROOT, "target", "release", "headcount"), self.hc)
        self.entries = json.load(open(os.path.join(HERE, "segments.json")))
        self.cal = sql.Calendar("UTC")
        end = dt.datetime.fromisoformat(END.replace("Z", "+00:00"))
        self.day = (end - dt.timedelta(microseconds=1)).date()  # the last completed day
        self.history_days = [self.day - dt.timedelta(days=i) for i in range(a.history_days - 1, -1, -1)]
        self.r = {"machine": machine(), "params": {
            "users": a.users, "days": a.days, "seed": SEED, "end": END,
            "events_per_user": a.events_per_user, "day": self.day.isoformat(),
            "history": [self.history_days[0].isoformat(), self.history_days[-1].isoformat()]},
            "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "mismatches": [], "edge_mismatches": [], "build": build_info(self.hc)}
        self.procs = []

    def mark(self, stage: str):
        self.r.setdefault("loadavg", {})[stage] = loadavg()

    def run(self, *cmd, **kw) -> subprocess.CompletedProcess:
        r = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, **kw)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stderr[-4000:]}")
        return r

    # -- data
    def gen(self):
        a = self.a
        path = os.path.join(self.work, "data.ndjson")
        meta = os.path.join(self.work, "data.params.json")
        want = {"users": a.users, "days": a.days, "seed": SEED, "end": END,
                "events_per_user": a.events_per_user}
        if os.path.exists(path) and os.path.exists(meta) and json.load(open(meta)) == want:
            log(f"gen: reusing {path}")
            self.r["gen"] = {"reused": True}
        else:
            free = shutil.disk_usage(self.work).free
            need = int(a.users * 3200 * 1.6)  # NDJSON ~3.1 KB/user, + data dir, Parquet, spill
            if free < need:
                raise RuntimeError(f"not enough disk under {self.work}: {free/2**30:.0f} GiB free, "
                                   f"~{need/2**30:.0f} GiB needed")
            log(f"gen: {a.users} users over {a.days} days, ending {END}")
            t = time.time()
            with open(path + ".tmp", "w") as out:
                subprocess.run([self.hc, "gen", "--users", str(a.users), "--seed", str(SEED),
                                "--days", str(a.days), "--end", END,
                                "--events-per-user", str(a.events_per_user)],
                               stdout=out, check=True)
            os.replace(path + ".tmp", path)
            json.dump(want, open(meta, "w"))
            self.r["gen"] = {"reused": False, "seconds": round(time.time() - t, 2)}
        self.r["gen"]["bytes"] = os.path.getsize(path)
        self.data = path

    # -- headcount offline
    def binary_sha256(self) -> str:
        h = hashlib.sha256()
        with open(self.hc, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    def reuse_headcount(self) -> bool:
        """With --reuse-headcount: the data directory, import figures and eval sizes of
        the last run, when it used the same binary, data and segments."""
        path = os.path.join(self.work, "headcount-results.json")
        if not (self.a.reuse_headcount and os.path.exists(path)):
            return False
        saved = json.load(open(path))
        if saved["key"] != self.headcount_key():
            log("headcount: the saved results are for another build, data or segments")
            return False
        log(f"headcount: reusing the import and eval of {saved['finished_at']} ({path})")
        self.dir = os.path.join(self.work, "headcount-data")
        self.key, self.counts, self.sizes = saved["api_key"], saved["counts"], saved["sizes"]
        self.r["import"] = dict(saved["import"], reused_from=saved["finished_at"])
        self.r["headcount"] = dict(saved["headcount"], reused_from=saved["finished_at"])
        return True

    def headcount_key(self) -> dict:
        return {"binary_sha256": self.binary_sha256(),
                "data": json.load(open(os.path.join(self.work, "data.params.json"))),
                "segments_sha256": hashlib.sha256(
                    open(os.path.join(HERE, "segments.json"), "rb").read()).hexdigest()}

    def save_headcount(self):
        path = os.path.join(self.work, "headcount-results.json")
        json.dump({"key": self.headcount_key(),
                   "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   "api_key": self.key, "counts": self.counts,
                   "sizes": {"headcount": self.sizes["headcount"]},
                   "import": self.r["import"], "headcount": self.r["headcount"]},
                  open(path, "w"))

    def hc_import(self):
        self.dir = os.path.join(self.work, "headcount-data")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.run(self.hc, "--data-dir", self.dir, "workspaces", "create", "bench",
                 "--export-rate-limit", 10**12, "--track-rate-limit", 10**12)
        self.key = self.run(self.hc, "--data-dir", self.dir, "keys", "create",
                            "--workspace", "bench", "--name", "bench").stdout.strip()
        log("import: headcount import (durable)")
        l0 = loadavg()
        t = time.time()
        r = self.run(self.hc, "--data-dir", self.dir, "import", "--workspace", "bench", "--json",
                     self.data)
        secs = time.time() - t
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        if summary["rejected_lines"]:
            raise RuntimeError(f"import rejected lines: {r.stderr[-2000:]}")
        attrs, events, purchases = (summary[k] for k in ("attributes", "events", "purchases"))
        self.counts = {"users": self.a.users, "attribute_objects": attrs, "events": events,
                       "purchases": purchases}
        ev = events + purchases
        du = sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(self.dir) for f in fs)
        self.r["import"] = {"seconds": round(secs, 3), "events": ev,
                            "events_per_second": round(ev / secs),
                            "objects_per_second": round((ev + attrs) / secs),
                            "data_dir_bytes": du, "loadavg_before": l0,
                            "summary": summary}
        log(f"import: {ev} events (+{attrs} attribute objects) in {secs:.1f}s = {ev/secs:,.0f} events/s")

    def filters_file(self, name, entries):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            json.dump(entries, f)
        return path

    def history_entries(self):
        """The 20 marked segments; in_segment references to unmarked segments inlined."""
        marked = [e for e in self.entries if e.get("history")]
        ids = {e["id"] for e in marked if e.get("id")}
        by_id = sql.by_id_of(self.entries)

        def inline(f):
            if isinstance(f, dict):
                if "in_segment" in f and f["in_segment"] not in ids:
                    return inline(by_id[f["in_segment"]])
                return {k: inline(v) for k, v in f.items()}
            if isinstance(f, list):
                return [inline(x) for x in f]
            return f

        return [dict(e, filter=inline(e["filter"])) for e in marked]

    def hc_eval(self, again=False):
        """headcount's sizes and times; `again`: a second measurement after the SQL
        engines, keeping the faster of the two (the VM is shared: a burst of someone
        else's load during one stage should not decide a ratio)."""
        if again:
            first = (self.r["headcount"], self.sizes["headcount"])
        log(f"eval: headcount, one day ({self.day}) of {len(self.entries)} segments")
        out = self.run(self.hc, "--data-dir", self.dir, "eval", "--workspace", "bench",
                       "--filters", self.filters_file("segments.json", self.entries),
                       "--day", self.day.isoformat()).stdout
        one = json.loads(out)
        hist = self.history_entries()
        log(f"eval: headcount, {len(self.history_days)} days of {len(hist)} segments")
        out = self.run(self.hc, "--data-dir", self.dir, "eval", "--workspace", "bench",
                       "--filters", self.filters_file("history.json", hist),
                       "--from", self.history_days[0].isoformat(),
                       "--to", self.history_days[-1].isoformat()).stdout
        many = json.loads(out)
        self.sizes = {"headcount": {
            "day": {x["name"]: x["sizes"] for x in one["results"]},
            "history": {x["name"]: x["sizes"] for x in many["results"]}}}
        self.r["headcount"] = {
            "load_seconds": round(one["load_seconds"], 3),
            "day_seconds": one["eval_seconds"], "history_seconds": many["eval_seconds"],
            "history_load_seconds": round(many["load_seconds"], 3),
            "users": one.get("users"), "events": one.get("events")}
        log(f"eval: day {one['eval_seconds']*1000:.1f} ms, history {many['eval_seconds']*1000:.1f} ms "
            f"(index load {one['load_seconds']:.2f}s)")
        if again:
            r, (r0, sizes0) = self.r["headcount"], first
            if sizes0 != self.sizes["headcount"]:
                self.r["mismatches"].append({"what": "headcount eval gave different sizes twice"})
            r["runs"] = [{k: r0[k] for k in ("day_seconds", "history_seconds", "load_seconds")},
                         {k: r[k] for k in ("day_seconds", "history_seconds", "load_seconds")}]
            for k in ("day_seconds", "history_seconds", "load_seconds"):
                r[k] = min(r0[k], r[k])

    # -- SQL engines
    def sql_key(self) -> dict:
        """What the SQL engines' sizes depend on: the data, the segments, the SQL, the days.
        Not the headcount build: that is what they check."""
        h = hashlib.sha256()
        for f in ("sql.py", "segments.json"):
            h.update(open(os.path.join(HERE, f), "rb").read())
        return {"data": json.load(open(os.path.join(self.work, "data.params.json"))),
                "sources_sha256": h.hexdigest(), "day": self.day.isoformat(),
                "history_days": [d.isoformat() for d in self.history_days[::self.a.history_sample]]}

    def sql_engines(self):
        """DuckDB's and chDB's sizes and times; with --reuse-sql, those of an earlier run
        on the same data, segments and SQL (bench/work/users-N/sql-results.json)."""
        cache = os.path.join(self.work, "sql-results.json")
        key = self.sql_key()
        if self.a.reuse_sql and os.path.exists(cache):
            saved = json.load(open(cache))
            if saved["key"] == key:
                log(f"sql: reusing DuckDB's and chDB's results from {saved['finished_at']} ({cache})")
                for k in ("normalize", "DuckDB", "chDB"):
                    if k in saved["records"]:
                        self.r[k] = dict(saved["records"][k], reused_from=saved["finished_at"])
                self.r.setdefault("loadavg", {}).update(
                    {f"{k} (reused)": v for k, v in saved["loadavg"].items()})
                self.sizes.update(saved["sizes"])
                self.check_event_counts(saved["records"]["normalize"])
                return False
            log("sql: the saved results are for other data, segments or SQL: running the engines")
        self.run_sql_engines()
        mine = {k: v for k, v in self.sizes.items() if k != "headcount"}
        loads = {k: v for k, v in self.r["loadavg"].items() if k == "sql"}
        with open(cache + ".tmp", "w") as f:
            json.dump({"key": key, "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                       "loadavg": dict(loads, end=loadavg()),
                       "records": {k: self.r[k] for k in ("normalize", "DuckDB", "chDB") if k in self.r},
                       "sizes": mine}, f)
        os.replace(cache + ".tmp", cache)
        return True

    def check_event_counts(self, counts):
        if counts["events"] + counts["purchases"] != self.r["import"]["events"]:
            self.r["mismatches"].append({"what": "event counts", "sql": counts,
                                         "headcount": self.counts})

    def run_sql_engines(self):
        norm = os.path.join(self.work, "normalized")
        done = os.path.join(norm, "done.json")
        want = {"data": json.load(open(os.path.join(self.work, "data.params.json"))),
                "version": sql.NORMALIZE_VERSION}
        saved = json.load(open(done)) if os.path.exists(done) else {}
        if saved.get("key") == want:
            log(f"sql: reusing the normalized Parquet in {norm}")
            self.r["normalize"] = dict(saved["record"], reused=True)
        else:
            shutil.rmtree(norm, ignore_errors=True)
            log("sql: NDJSON -> normalized Parquet (DuckDB's JSON reader)")
            t = time.time()
            counts = sql.normalize_duckdb(self.data, norm)
            self.r["normalize"] = {"seconds": round(time.time() - t, 3), **counts}
            json.dump({"key": want, "record": self.r["normalize"]}, open(done, "w"))
        self.check_event_counts(self.r["normalize"])
        hist = self.history_entries()
        hist_names = [e["name"] for e in hist]
        # Above a few million users DuckDB's uncompressed in-memory tables outgrow this
        # machine's RAM: it then works on a database file, as a data team would.
        big = self.a.users > 2_000_000
        duck_file = os.path.join(self.work, "duckdb.db")
        engines = [sql.DuckDB] + ([] if "chdb" in self.a.skip else [sql.ChDB])
        for E in engines:
            if E is sql.DuckDB and big:
                for f in (duck_file, duck_file + ".wal"):
                    if os.path.exists(f):
                        os.remove(f)
                e = E(path=duck_file, temp_dir=os.path.join(self.work, "duckdb.tmp"))
            else:
                e = E()
            if E is sql.DuckDB and big:
                # The one query for the 100 segments ran out of memory (18.8 of 23.6 GiB)
                # at 10M users: one query per segment for the day, without trying.
                e.too_big.add(len(self.entries))
            log(f"sql: load {e.name}")
            t = time.time()
            e.load(norm)
            load = time.time() - t
            rec = {"version": e.version, "load_seconds": round(load, 3)}
            per = None
            if not big:  # always the slower strategy; at 10M it would take ~10 minutes more
                log(f"sql: {e.name}: one day, one query per segment")
                t = time.time()
                per = sql.sizes(e, self.entries, [self.day], self.cal, combined=False)
                rec["day_per_segment_seconds"] = round(time.time() - t, 3)
            log(f"sql: {e.name}: one day, one query for all segments (best of 2)")
            best = None
            for _ in range(1 if big else 2):
                t = time.time()
                comb = sql.sizes(e, self.entries, [self.day], self.cal, combined=True)
                best = min(best or 1e99, time.time() - t)
            rec["day_one_query_seconds"] = round(best, 3)
            rec["day_best_seconds"] = min(rec.get("day_per_segment_seconds") or 1e99,
                                          rec["day_one_query_seconds"])
            if e.too_big:
                rec["one_query_out_of_memory_for_segments"] = sorted(e.too_big)
            days = self.history_days[::self.a.history_sample]
            log(f"sql: {e.name}: history, one query per day for {len(days)} days")
            t = time.time()
            h = sql.sizes(e, hist, days, self.cal, combined=True)
            secs = time.time() - t
            rec["history_days_run"] = len(days)
            rec["history_seconds"] = round(secs * len(self.history_days) / len(days), 3)
            rec["history_extrapolated"] = len(days) != len(self.history_days)
            if E is sql.DuckDB:
                self.sql_snapshot_sizes(e, rec, hist)
            self.r[e.name] = rec
            if per is not None:
                self.sizes[e.name + " (query per segment)"] = {"day": per}
            self.sizes[e.name] = {"day": comb, "history": h}
            log(f"sql: {e.name}: load {load:.1f}s, day {rec['day_best_seconds']:.2f}s, "
                f"history {rec['history_seconds']:.1f}s")
            del e
            if E is sql.DuckDB and big:
                for f in (duck_file, duck_file + ".wal"):
                    if os.path.exists(f):
                        os.remove(f)

    def snapshot_names(self) -> list[str]:
        """The segments of the one-day snapshot: the first SNAPSHOT_SEGMENTS."""
        return [e["name"] for e in self.entries[:SNAPSHOT_SEGMENTS]]

    def snapshot_days(self) -> list:
        """The days of the long snapshot: the last SNAPSHOT_DAYS completed days."""
        return self.history_days[-SNAPSHOT_DAYS:]

    def sql_snapshot_sizes(self, e, rec, hist):
        """DuckDB's side of the whole-process snapshot rows: its queries for one day of
        the snapshot's 50 segments (one query, best of 2) and for 40 days of the 20
        history segments (one query per day; every --history-sample'th day, the time
        multiplied back). Its preparation is its load, measured above."""
        names = self.snapshot_names()
        log(f"sql: {e.name}: one day of {len(names)} segments (snapshot), best of 2")
        best = None
        for _ in range(2):
            t = time.time()
            day = sql.sizes(e, self.entries, [self.day], self.cal, combined=True, names=names)
            best = min(best or 1e99, time.time() - t)
        rec["snapshot_day_seconds"] = round(best, 3)
        days = self.snapshot_days()
        run = days[::self.a.history_sample]
        log(f"sql: {e.name}: {len(days)} days of {len(hist)} segments (snapshot), {len(run)} run")
        t = time.time()
        h = sql.sizes(e, hist, run, self.cal, combined=True)
        rec["snapshot_history_seconds"] = round((time.time() - t) * len(days) / len(run), 3)
        rec["snapshot_history_days_run"] = len(run)
        self.sizes[e.name + " (snapshot)"] = {"day": day, "history": h}

    def compare(self):
        hc = self.sizes["headcount"]
        n = 0
        for engine, got in self.sizes.items():
            if engine == "headcount":
                continue
            for kind in ("day", "history"):
                for name, sizes in got.get(kind, {}).items():
                    for day, v in sizes.items():
                        want = hc[kind].get(name, {}).get(day)
                        if want != v:
                            n += 1
                            self.r["mismatches"].append({"segment": name, "day": day, "kind": kind,
                                                         "headcount": want, engine: v})
        log(f"compare: {n} differing sizes")

    def edge(self):
        log("edge: corner cases in three engines, UTC and America/New_York")
        t = time.time()
        diffs = edge.run(self.hc, os.path.join(self.work, "edge"))
        self.r["edge"] = {"seconds": round(time.time() - t, 1),
                          "filters": len(edge.filters()), "days": len(edge.days()),
                          "differing_sizes": len(diffs)}
        self.r["edge_mismatches"] = edge.summarize(diffs)
        log(f"edge: {len(diffs)} differing sizes")

    # -- servers
    def start(self, cmd, name):
        p = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(self.work, name + ".log"), "w"))
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def wait_ready(self, url, p, timeout=1800):
        t = time.time()
        while time.time() - t < timeout:
            if p.poll() is not None:
                raise RuntimeError(f"server exited ({p.returncode}); see the logs in {self.work}")
            try:
                s, _ = http("GET", url, timeout=2)
                if s == 200:
                    return time.time() - t
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server not ready")

    def wrk(self, url, lua, seconds):
        r = self.run("wrk", "-t", os.cpu_count() or 2, "-c", self.a.connections, "-d", f"{seconds}s",
                     "--latency", "-s", lua, url)
        out = r.stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        lat = {}
        for pct, val, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
            lat[pct] = float(val) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        return {"requests_per_second": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"),
                "non_2xx": int(non2xx.group(1)) if non2xx else 0,
                "socket_errors": errors.group(1) if errors else None, "raw": out}

    def snapshot(self):
        """`headcount snapshot` as a whole process (open, load the checkpoint the clean
        stop wrote, compute, store): one day of the first 50 segments, and 40 days of the
        20 history segments, each recomputed and stored; best of 2."""
        by_name = {e["name"]: e["_sid"] for e in self.entries}
        runs = {
            "day": ([by_name[n] for n in self.snapshot_names()], [self.day]),
            "history": ([by_name[e["name"]] for e in self.history_entries()], self.snapshot_days()),
        }
        rec = {"checkpoint_bytes": sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in
                                       os.walk(os.path.join(self.dir, "checkpoints")) for f in fs)}
        for kind, (sids, days) in runs.items():
            cmd = [self.hc, "--data-dir", self.dir, "snapshot", "--workspace", "bench",
                   "--from", days[0].isoformat(), "--to", days[-1].isoformat(), "--recompute"]
            for sid in sids:
                cmd += ["--segment", sid]
            log(f"snapshot: {len(days)} day(s) of {len(sids)} segments, whole process, best of 2")
            best = None
            for _ in range(2):
                t = time.time()
                r = self.run(*cmd)
                best = min(best or 1e99, time.time() - t)
            rec[f"{kind}_seconds"] = round(best, 3)
            rec[f"{kind}_segments"], rec[f"{kind}_days"] = len(sids), len(days)
            rec[f"{kind}_output"] = r.stderr.strip().splitlines()[-1:]
            log(f"snapshot: {best:.2f}s")
        self.r["snapshot"] = rec

    def empty_server_rss(self) -> int:
        """The resident memory of a server holding no facts: the process's fixed cost
        (code, runtime, thread stacks, SQLite), which the data held comes on top of."""
        d = os.path.join(self.work, "empty-data")
        shutil.rmtree(d, ignore_errors=True)
        self.run(self.hc, "--data-dir", d, "workspaces", "create", "bench")
        port = free_port()
        p = self.start([self.hc, "--data-dir", d, "serve", "--listen", f"127.0.0.1:{port}"],
                       "serve-empty")
        self.wait_ready(f"http://127.0.0.1:{port}/healthz", p)
        time.sleep(1)
        rss = rss_bytes(p.pid)
        self.stop(p)
        shutil.rmtree(d, ignore_errors=True)
        return rss

    def serve(self):
        empty = self.empty_server_rss()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log("serve: starting headcount serve")
        t = time.time()
        p = self.start([self.hc, "--data-dir", self.dir, "serve", "--listen", f"127.0.0.1:{port}"],
                       "serve")
        # /healthz answers as soon as the process is up; /readyz once the index is loaded.
        ready = self.wait_ready(base + "/readyz", p)
        time.sleep(1)
        rss = rss_bytes(p.pid)
        ev = self.r["import"]["events"]
        self.r["memory"] = {"ready_seconds": round(ready, 2), "rss_bytes": rss,
                            "empty_server_rss_bytes": empty, "held_bytes": rss - empty,
                            "bytes_per_event": round(rss / max(ev, 1), 2),
                            "bytes_per_user": round(rss / self.a.users, 1),
                            "budget_bytes": 12 * ev + 200 * self.a.users}
        m = re.search(r"heap_mb=(\d+)", open(os.path.join(self.work, "serve.log")).read())
        if m:
            self.r["memory"]["index_heap_mib_logged"] = int(m.group(1))
        log(f"serve: ready in {ready:.1f}s, VmRSS {rss/2**20:.0f} MiB "
            f"({rss/max(ev,1):.1f} B/event, {rss/self.a.users:.0f} B/user); "
            f"an empty server's {empty/2**20:.0f} MiB")
        # Segments, through the API (in_segment references need the real ids).
        ids = {}
        t = time.time()
        for e in self.entries:
            f = json.loads(json.dumps(e["filter"]))

            def sub(x):
                if isinstance(x, dict):
                    if "in_segment" in x:
                        return {"in_segment": ids[x["in_segment"]]}
                    return {k: sub(v) for k, v in x.items()}
                if isinstance(x, list):
                    return [sub(v) for v in x]
                return x

            s, body = http("POST", base + "/segments/create", self.key,
                           {"name": e["name"], "filter": sub(f)})
            if s != 201:
                raise RuntimeError(f"create {e['name']}: {s} {body[:300]}")
            sid = json.loads(body)["segment_id"]
            if e.get("id"):
                ids[e["id"]] = sid
            e["_sid"] = sid
        created = time.time() - t
        # Warm: every segment's 100 days computed and stored (the request computes any day
        # the background backfill has not reached yet).
        t = time.time()
        bodies = []
        for e in self.entries:
            s, body = http("GET", f"{base}/segments/data_series?segment_id={e['_sid']}&length=100",
                           self.key)
            if s != 200:
                raise RuntimeError(f"data_series {e['name']}: {s} {body[:300]}")
            bodies.append(body)
        warm = time.time() - t
        # Sizes served over HTTP must be those of eval for the benchmark day.
        for e, body in zip(self.entries, bodies):
            pts = {x["time"]: x["size"] for x in json.loads(body)["data"]}
            want = self.sizes["headcount"]["day"][e["name"]][self.day.isoformat()]
            if self.day.isoformat() in pts and pts[self.day.isoformat()] != want:
                self.r["mismatches"].append({"segment": e["name"], "day": self.day.isoformat(),
                                             "kind": "data_series vs eval", "eval": want,
                                             "data_series": pts[self.day.isoformat()]})
        body = max(bodies, key=len)
        body_file = os.path.join(self.work, "ceiling-body.json")
        open(body_file, "wb").write(body)
        lua = os.path.join(self.work, "data_series.lua")
        sids = ", ".join(json.dumps(e["_sid"]) for e in self.entries)
        open(lua, "w").write(
            f'local ids = {{ {sids} }}\nlocal n = 0\n'
            f'request = function()\n  n = n + 1\n'
            f'  return wrk.format("GET", "/segments/data_series?segment_id=" .. ids[(n % #ids) + 1]'
            f' .. "&length=100", {{ ["Authorization"] = "Bearer {self.key}" }})\nend\n')
        log(f"serve: wrk GET /segments/data_series, {self.a.connections} connections, "
            f"{self.a.seconds}s, 100 segments in turn, length=100, default ending_at")
        ds = self.wrk(base, lua, self.a.seconds)
        self.r["data_series"] = {k: v for k, v in ds.items() if k != "raw"}
        self.r["data_series"].update({"create_seconds": round(created, 2),
                                      "warm_seconds": round(warm, 2),
                                      "body_bytes": len(body)})
        open(os.path.join(self.work, "wrk-data_series.txt"), "w").write(ds["raw"])
        log(f"serve: data_series {ds['requests_per_second']:,.0f} req/s, p50 {ds['p50_ms']} ms, "
            f"p99 {ds['p99_ms']} ms, non-2xx {ds['non_2xx']}")
        # The same without today's live point: ending_at = the start of today, so every
        # point is a stored completed day (what the live point costs, by difference).
        today = dt.datetime.now(dt.timezone.utc).date().isoformat()
        lua_stored = os.path.join(self.work, "data_series_stored.lua")
        open(lua_stored, "w").write(open(lua).read().replace(
            '"&length=100"', f'"&length=100&ending_at={today}"'))
        log("serve: wrk GET /segments/data_series, stored days only (ending_at = start of today)")
        st = self.wrk(base, lua_stored, self.a.seconds)
        self.r["data_series_stored_only"] = {k: v for k, v in st.items() if k != "raw"}
        log(f"serve: data_series (stored only) {st['requests_per_second']:,.0f} req/s, "
            f"p50 {st['p50_ms']} ms, p99 {st['p99_ms']} ms, non-2xx {st['non_2xx']}")
        # /users/track, durable acks.
        now = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        log(f"serve: trackload POST /users/track, batches of 75, {self.a.track_connections} connections")
        r = self.run(os.path.join(self.tools, "trackload"), "--url", base, "--key", self.key,
                     "--users", self.a.users, "--connections", self.a.track_connections,
                     "--seconds", self.a.seconds, "--batch", 75, "--time", now)
        tr = json.loads(r.stdout)
        self.r["track"] = tr
        self.r["memory"]["rss_bytes_after_benchmarks"] = rss_bytes(p.pid)
        log(f"serve: track {tr['events_per_second']:,.0f} events/s ({tr['requests_per_second']:,.0f} "
            f"req/s, p50 {tr['p50_ms']:.1f} ms, p99 {tr['p99_ms']:.1f} ms, errors {tr['errors']})")
        self.stop(p)
        self.snapshot()
        # The ceiling.
        port = free_port()
        c = self.start([os.path.join(self.tools, "ceiling"), f"127.0.0.1:{port}", body_file], "ceiling")
        self.wait_ready(f"http://127.0.0.1:{port}/", c)
        log("serve: wrk against the ceiling")
        ce = self.wrk(f"http://127.0.0.1:{port}", lua, self.a.seconds)
        self.stop(c)
        self.r["ceiling"] = {k: v for k, v in ce.items() if k != "raw"}
        log(f"serve: ceiling {ce['requests_per_second']:,.0f} req/s, p99 {ce['p99_ms']} ms")

    def cleanup(self):
        for p in self.procs:
            try:
                self.stop(p)
            except Exception:
                pass


# ---------------------------------------------------------------------------------------

def ratio(a, b):
    return round(a / b, 2) if a and b else None


def table(r: dict) -> tuple[list[list[str]], dict]:
    """The figures, ratios and targets."""
    rows, targets = [], {}
    hc = r.get("headcount", {})
    dk, ch = r.get("DuckDB", {}), r.get("chDB", {})
    ms = lambda s: f"{s*1000:,.1f} ms" if s is not None else "-"
    imp = r.get("import", {})
    if imp:
        ok = imp["events_per_second"] >= 1_000_000
        targets["import >= 1M events/s durable"] = ok
        rows.append(["import (durable), events/s", f"{imp['events_per_second']:,}",
                     f"{imp['events']:,} events in {imp['seconds']:.1f} s", "≥ 1,000,000", ok])
    if hc and dk:
        # chDB is left out with --skip chdb: its ratios then show as "-".
        cd = lambda k: ch.get(k)
        rd, rc = ratio(dk["day_best_seconds"], hc["day_seconds"]), ratio(cd("day_best_seconds"), hc["day_seconds"])
        ok = bool(rd and rd >= 10 and (rc is None or rc >= 10))
        targets["one day of 100 segments >= 10x DuckDB and chDB"] = ok
        rows.append(["one day, 100 segments", ms(hc["day_seconds"]),
                     f"DuckDB {ms(dk['day_best_seconds'])} ({rd}×), chDB {ms(cd('day_best_seconds'))} ({rc}×)",
                     "≥ 10×", ok])
        rd, rc = ratio(dk["history_seconds"], hc["history_seconds"]), ratio(cd("history_seconds"), hc["history_seconds"])
        ok = bool(rd and rd >= 20 and (rc is None or rc >= 20))
        targets["100-day history of 20 segments >= 20x per-day queries"] = ok
        ext = " (extrapolated)" if dk.get("history_extrapolated") else ""
        rows.append(["100 days × 20 segments", ms(hc["history_seconds"]),
                     f"DuckDB {ms(dk['history_seconds'])} ({rd}×), chDB {ms(cd('history_seconds'))} ({rc}×){ext}",
                     "≥ 20×", ok])
        chl = f"{cd('load_seconds'):.2f} s" if cd("load_seconds") else "-"
        rows.append(["load into memory", f"{hc['load_seconds']:.2f} s",
                     f"DuckDB {dk['load_seconds']:.2f} s, chDB {chl} "
                     f"(+ {r['normalize']['seconds']:.1f} s NDJSON→Parquet)", "", None])
    sn = r.get("snapshot")
    if sn and dk.get("snapshot_day_seconds"):
        prep = dk["load_seconds"]
        for kind, queries, target in (("day", "snapshot_day_seconds", 10),
                                      ("history", "snapshot_history_seconds", 20)):
            theirs = prep + dk[queries]
            rd = ratio(theirs, sn[f"{kind}_seconds"])
            ok = bool(rd and rd >= target)
            what = f"snapshot, {sn[f'{kind}_days']} day(s) × {sn[f'{kind}_segments']} segments, whole process"
            targets[f"{what} >= {target}x DuckDB's load + queries"] = ok
            rows.append([what, f"{sn[f'{kind}_seconds']:.2f} s",
                         f"DuckDB {theirs:.2f} s = load {prep:.2f} s + queries {dk[queries]:.2f} s ({rd}×)",
                         f"≥ {target}×", ok])
    ds, ce = r.get("data_series"), r.get("ceiling")
    if ds and ce:
        rr = ratio(ds["requests_per_second"], ce["requests_per_second"])
        ok = bool(rr and rr >= 0.5 and ds["p99_ms"] is not None and ds["p99_ms"] < 5 and ds["non_2xx"] == 0)
        targets["data_series >= half the ceiling, p99 < 5 ms"] = ok
        rows.append(["GET /segments/data_series, req/s", f"{ds['requests_per_second']:,.0f}",
                     f"ceiling {ce['requests_per_second']:,.0f} ({rr}× of it)", "≥ 0.5×", ok])
        rows.append(["  latency p50 / p99", f"{ds['p50_ms']} / {ds['p99_ms']} ms",
                     f"ceiling {ce['p50_ms']:.2f} / {ce['p99_ms']:.2f} ms", "p99 < 5 ms", None])
        st = r.get("data_series_stored_only")
        if st:
            rows.append(["  same, stored days only (no live point)",
                         f"{st['requests_per_second']:,.0f} req/s",
                         f"p50 {st['p50_ms']} / p99 {st['p99_ms']} ms ({ratio(st['requests_per_second'], ce['requests_per_second'])}× the ceiling)",
                         "", None])
    tr = r.get("track")
    if tr:
        ok = tr["events_per_second"] >= 200_000 and tr["errors"] == 0
        targets["/users/track >= 200k events/s"] = ok
        rows.append(["POST /users/track (75/batch, durable), events/s", f"{tr['events_per_second']:,.0f}",
                     f"{tr['requests_per_second']:,.0f} req/s, p50 {tr['p50_ms']:.1f} ms, p99 {tr['p99_ms']:.1f} ms, "
                     f"{tr['connections']} connections, {tr['errors']} errors", "≥ 200,000", ok])
    m = r.get("memory")
    if m:
        # The data held: the loaded server's RSS above an empty server's (older results
        # have no empty server: the whole RSS then).
        held = m.get("held_bytes", m["rss_bytes"])
        ok = held <= m["budget_bytes"]
        targets["memory <= 12 B/event + 200 B/user"] = ok
        rows.append(["server RSS after loading", f"{m['rss_bytes']/2**20:,.0f} MiB",
                     (f"{held/2**20:,.0f} MiB above an empty server's "
                      f"{m['empty_server_rss_bytes']/2**20:,.0f} MiB; " if "held_bytes" in m else "")
                     + f"{m['bytes_per_event']} B/event, {m['bytes_per_user']} B/user in all"
                     + (f" (index heap {m['index_heap_mib_logged']} MiB as logged)" if m.get('index_heap_mib_logged') else "")
                     + "; budget "
                     f"12 B/event + 200 B/user = {m['budget_bytes']/2**20:,.0f} MiB", "held ≤ budget", ok])
    return rows, targets


def render(r: dict) -> str:
    rows, _ = table(r)
    head = ["figure", "headcount", "compared with", "target", "met"]
    cells = [head] + [[a, b, c, d, "" if e is None else ("yes" if e else "NO")] for a, b, c, d, e in rows]
    w = [max(len(row[i]) for row in cells) for i in range(5)]
    line = lambda row: "| " + " | ".join(x.ljust(w[i]) for i, x in enumerate(row)) + " |"
    out = [line(head), "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    out += [line(row) for row in cells[1:]]
    reused = r.get("DuckDB", {}).get("reused_from")
    if reused:
        out.append(f"DuckDB's and chDB's figures and sizes: the run of {reused} (--reuse-sql)")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--events-per-user", type=float, default=30.0)
    ap.add_argument("--history-days", type=int, default=100)
    ap.add_argument("--history-sample", type=int, default=1,
                    help="SQL engines: run every Nth day of the history and extrapolate the time "
                         "(only those days are compared)")
    ap.add_argument("--seconds", type=int, default=10, help="duration of each load test")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections")
    ap.add_argument("--track-connections", type=int, default=32)
    ap.add_argument("--skip", action="append", default=[],
                    help="skip a stage: sql, edge, serve, or chdb (DuckDB only) (repeatable)")
    ap.add_argument("--reuse-headcount", action="store_true",
                    help="keep the data directory, import figures and eval sizes of the last run "
                         "if it used the same headcount binary, data and segments")
    ap.add_argument("--reuse-sql", action="store_true",
                    help="take DuckDB's and chDB's sizes and times from an earlier run on the same "
                         "data, segments and SQL (bench/work/users-N/sql-results.json) instead of "
                         "running them again; headcount's sizes are still checked against them")
    a = ap.parse_args()
    b = Bench(a)
    code = 0
    try:
        b.gen()
        if not b.reuse_headcount():
            b.mark("import")
            b.hc_import()
            b.mark("eval")
            b.hc_eval()
            b.save_headcount()
        if "sql" not in a.skip:
            b.mark("sql")
            # A second headcount measurement (the faster counts) when the engines ran,
            # except at 10M, where it would add ~7 minutes.
            if b.sql_engines() and a.users <= 2_000_000:
                b.mark("eval again")
                b.hc_eval(again=True)
            b.compare()
        if "edge" not in a.skip:
            b.edge()
        if "serve" not in a.skip:
            b.mark("serve")
            b.serve()
        b.mark("end")
    finally:
        b.cleanup()
        r = b.r
        r["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        _, targets = table(r)
        r["targets"] = targets
        out = os.path.join(HERE, "results")
        os.makedirs(out, exist_ok=True)
        for name in ("latest.json", f"users-{a.users}.json"):
            with open(os.path.join(out, name), "w") as f:
                json.dump(r, f, indent=1)
        print()
        print(f"headcount benchmark: {a.users:,} users, {r.get('import', {}).get('events', 0):,} events, "
              f"{r['machine']['nproc']} × {r['machine']['cpu']}, {r['machine']['memory_gib']} GiB; "
              f"build {r['build']['commit']} (+{r['build']['worktree_changes']} changed files); "
              f"load average at each stage {r.get('loadavg')}")
        print(render(r))
        if r["mismatches"]:
            code = 1
            print(f"\nFAIL: {len(r['mismatches'])} sizes differ between the engines:")
            for m in r["mismatches"][:50]:
                print("  ", json.dumps(m))
        if r["edge_mismatches"]:
            code = 1
            print(f"\nFAIL: edge cases differ ({r['edge']['differing_sizes']} sizes):")
            for d in r["edge_mismatches"]:
                print(f"   {d['tz']:17s} {d['filter']:30s} first on {d['day']} ({d['days_differing']} days) "
                      f"{json.dumps(d['sizes'])}  {json.dumps(d['definition'])}")
        print(f"\nresults: {os.path.join(out, 'latest.json')}")
    sys.exit(code)


if __name__ == "__main__":
    main()
