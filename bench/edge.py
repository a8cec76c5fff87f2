"""Edge cases: a small hand-written dataset and filters aimed at the corners of
segments.md that the synthetic generator never produces (null unsets, kind changes,
facts at exactly midnight, window edges, datetime spellings, aliases, a DST day...).

bench/run sizes them in headcount (import + eval), DuckDB and chDB, over every day of a
range, in a UTC workspace and in an America/New_York one, and reports every difference.

    python3 bench/edge.py HEADCOUNT_BIN WORKDIR      (standalone)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sql  # noqa: E402

FIRST_DAY, LAST_DAY = dt.date(2026, 9, 24), dt.date(2026, 11, 3)


def attrs(uid, time, **kv):
    o = {"external_id": uid, "_time": time}
    o.update(kv)
    return o


def ev(uid, name, time):
    return {"external_id": uid, "name": name, "time": time}


def line(attributes=(), events=(), purchases=()):
    return json.dumps({"attributes": list(attributes), "events": list(events),
                       "purchases": list(purchases)})


def dataset() -> list[str]:
    L = []
    # Unset at exactly midnight: FR on 10-02, gone on 10-03 (facts at T are not "before T").
    L.append(line([attrs("nullme", "2026-10-01T10:00:00Z", country="FR", plan="pro"),
                   attrs("nullme", "2026-10-03T00:00:00Z", country=None)]))
    # One attribute changing kind every day.
    L.append(line([attrs("kinds", "2026-10-01T12:00:00Z", age=30),
                   attrs("kinds", "2026-10-02T12:00:00Z", age="thirty"),
                   attrs("kinds", "2026-10-03T12:00:00Z", age=True),
                   attrs("kinds", "2026-10-04T12:00:00Z", age=["30"]),
                   attrs("kinds", "2026-10-05T12:00:00Z", age="2026-10-01T00:00:00+02:00"),
                   attrs("kinds", "2026-10-06T12:00:00Z", age=30.0),
                   attrs("kinds", "2026-10-07T12:00:00Z", age=None),
                   attrs("kinds", "2026-10-08T12:00:00Z", age=1e3)]))
    # An attribute object that sets nothing: the user exists from it.
    L.append(line([{"external_id": "empty", "_time": "2026-10-02T12:00:00Z"}]))
    # Exists from its first event, at exactly midnight.
    L.append(line(events=[ev("midnight", "login", "2026-10-03T00:00:00Z"),
                          ev("midnight", "login", "2026-10-03T00:00:00.000001Z")]))
    # Window edges for W = 7 on R = 10-02: start(09-26) is in, a microsecond before is out.
    L.append(line(events=[ev("edges", "login", "2026-09-26T00:00:00Z"),
                          ev("edges", "login", "2026-09-25T23:59:59.999999Z"),
                          ev("edges", "login", "2026-10-02T23:59:59.999999Z"),
                          ev("edges", "search", "2026-10-02T23:30:00-01:00")]))
    # Aliases and braze ids are their own users; the alias buckets like "email:a@x.io".
    L.append(line([{"user_alias": {"alias_name": "a@x.io", "alias_label": "email"},
                    "_time": "2026-10-01T00:00:00Z", "country": "DE"}],
                  [{"user_alias": {"alias_name": "a@x.io", "alias_label": "email"},
                    "name": "login", "time": "2026-10-01T09:00:00Z"}]))
    L.append(line([attrs("email:a@x.io", "2026-10-01T00:00:00Z", country="DE")]))
    L.append(line([{"braze_id": "b-123", "_time": "2026-10-01T00:00:00Z", "country": "DE"}]))
    # Datetime spellings as attribute values (which are datetimes, which strings).
    spellings = {
        "dt_z": "2026-10-01T08:00:00Z",
        "dt_plus": "2026-10-01T10:00:00+02:00",
        "dt_frac9": "2026-10-01T08:00:00.123456789Z",
        "dt_bare_date": "2026-10-01",
        "dt_no_offset": "2026-10-01T08:00:00",
        "dt_braze_ms": "2026-10-01T08:00:00:000+0000",
        "dt_hhmm": "2026-10-01T10:00:00+0200",
        "dt_hh": "2026-10-01T10:00:00+02",
        "dt_h_mm": "2026-10-01T03:00:00-5:00",
        "dt_space": "2026-10-01 08:00:00Z",
        "dt_lower_z": "2026-10-01T08:00:00z",
        "dt_no_seconds": "2026-10-01T08:00Z",
        "dt_bad_day": "2026-02-30T08:00:00Z",
    }
    for k, v in spellings.items():
        L.append(line([attrs("sp-" + k, "2026-10-01T12:00:00Z", stamp=v, country="SP")]))
    # Two writes of one attribute at the same microsecond: the later one in the input.
    L.append(line([attrs("tie", "2026-10-01T12:00:00Z", plan="first"),
                   attrs("tie", "2026-10-01T12:00:00Z", plan="second")]))
    # Arrays: order and duplicates matter to eq; contains is membership.
    L.append(line([attrs("arr1", "2026-10-01T00:00:00Z", devices=["web", "ios"])]))
    L.append(line([attrs("arr2", "2026-10-01T00:00:00Z", devices=["ios", "ios"])]))
    L.append(line([attrs("arr3", "2026-10-01T00:00:00Z", devices=[])]))
    # Numbers: f64 semantics.
    L.append(line([attrs("big", "2026-10-01T00:00:00Z", ltv=9007199254740993, age=-0.0)]))
    L.append(line([attrs("flt", "2026-10-01T00:00:00Z", ltv=0.30000000000000004, age=0)]))
    # Strings: case, unicode, regex metacharacters, the empty string.
    L.append(line([attrs("zoe", "2026-10-01T00:00:00Z", email="Zoë.Ünal+tag@Example.COM",
                         language="")]))
    # Future events are clamped to the moment of receipt (after every day sized here).
    L.append(line(events=[ev("future", "login", "2031-01-01T00:00:00Z")]))
    # Purchases, with and without a time; only a purchase makes this user exist.
    L.append(line(purchases=[{"external_id": "buyer", "product_id": "sku-pro", "currency": "USD",
                              "price": 10, "time": "2026-10-02T10:00:00Z"},
                             {"external_id": "buyer", "product_id": "gift-card", "currency": "USD",
                              "price": 5, "time": "2026-10-04T10:00:00+09:00"}]))
    # Signup dates for within_last_days / more_than_days_ago edges, and the DST night
    # of America/New_York (2026-11-01 has 25 hours there).
    for i, t in enumerate(["2026-09-26T00:00:00Z", "2026-09-25T23:59:59.999999Z",
                           "2026-10-02T23:59:59.999999Z", "2026-10-03T00:00:00Z",
                           "2026-11-01T04:00:00Z", "2026-11-01T04:30:00Z", "2026-11-01T05:00:00Z",
                           "2026-11-02T04:59:59Z", "2026-11-02T05:00:00Z",
                           "2026-10-31T23:00:00-04:00", "2026-12-25T00:00:00Z"]):
        L.append(line([attrs(f"signup-{i}", "2026-09-20T00:00:00Z", signup_date=t)],
                      [ev(f"signup-{i}", "dst", t if not t.startswith("2026-12") else
                          "2026-11-01T06:00:00Z")]))
    return L


A = lambda name, op, v=None: ({"attribute": name, "op": op} if v is None
                              else {"attribute": name, "op": op, "value": v})


def E(name, op, v, w=None):
    d = {"event": name, "op": op, "value": v}
    if w is not None:
        d["within_days"] = w
    return d


def filters() -> list[dict]:
    F = []
    add = lambda name, f, id=None: F.append({"name": name, "filter": f, **({"id": id} if id else {})})
    add("everyone", {"all": []})
    add("country FR", A("country", "eq", "FR"))
    add("country exists", A("country", "exists"))
    add("country not_exists", A("country", "not_exists"))
    add("country ne FR", A("country", "ne", "FR"))
    add("country not_in FR", A("country", "not_in", ["FR"]))
    add("plan pro", A("plan", "eq", "pro"))
    add("age eq 30", A("age", "eq", 30))
    add("age eq 30.0", A("age", "eq", 30.0))
    add("age ne 30", A("age", "ne", 30))
    add("age gt 29", A("age", "gt", 29))
    add("age eq thirty", A("age", "eq", "thirty"))
    add("age eq true", A("age", "eq", True))
    add("age eq [30]", A("age", "eq", ["30"]))
    add("age contains 30", A("age", "contains", "30"))
    add("age contains th", A("age", "contains", "th"))
    add("age eq datetime", A("age", "eq", "2026-09-30T22:00:00Z"))
    add("age gte 2026-09-30", A("age", "gte", "2026-09-30"))
    add("age eq 1000", A("age", "eq", 1000))
    add("age exists", A("age", "exists"))
    add("age not_exists", A("age", "not_exists"))
    add("age in [30, thirty]", A("age", "in", [30, "thirty"]))
    add("age not_in [30, thirty]", A("age", "not_in", [30, "thirty"]))
    add("age eq 0 (-0.0 and 0)", A("age", "eq", 0))
    add("login ever", E("login", "gte", 1))
    add("login eq 0", E("login", "eq", 0))
    add("login 7 days", E("login", "gte", 1, 7))
    add("login eq 2 in 7 days", E("login", "eq", 2, 7))
    add("login 1 day", E("login", "gte", 1, 1))
    add("search 1 day", E("search", "gte", 1, 1))
    add("dst event 1 day", E("dst", "gte", 1, 1))
    add("dst event 2 days", E("dst", "eq", 1, 2))
    add("any purchase", {"purchase": "*", "op": "gte", "value": 1})
    add("sku-pro 1 day", {"purchase": "sku-pro", "op": "gte", "value": 1, "within_days": 1})
    add("no purchase in 3 days", {"purchase": "*", "op": "eq", "value": 0, "within_days": 3})
    for k, v in [("eq Z", "2026-10-01T08:00:00Z"), ("eq +02:00", "2026-10-01T10:00:00+02:00"),
                 ("eq +0200", "2026-10-01T10:00:00+0200"), ("eq -5:00", "2026-10-01T03:00:00-5:00"),
                 ("eq 9 digits", "2026-10-01T08:00:00.123456789Z"),
                 ("eq 6 digits", "2026-10-01T08:00:00.123456Z"),
                 ("eq bare date (a string)", "2026-10-01"),
                 ("eq no offset (a string)", "2026-10-01T08:00:00")]:
        add("stamp " + k, A("stamp", "eq", v))
    add("stamp gte 8:00Z", A("stamp", "gte", "2026-10-01T08:00:00Z"))
    add("stamp gt 8:00Z", A("stamp", "gt", "2026-10-01T08:00:00Z"))
    add("stamp lte 9-digit operand", A("stamp", "lte", "2026-10-01T08:00:00.123456789Z"))
    add("stamp lt 9-digit operand", A("stamp", "lt", "2026-10-01T08:00:00.123456789Z"))
    add("stamp lt bare date 10-02", A("stamp", "lt", "2026-10-02"))
    add("stamp lt no offset 09:00", A("stamp", "lt", "2026-10-01T09:00:00"))
    add("stamp starts_with 2026", A("stamp", "starts_with", "2026"))
    add("stamp contains T", A("stamp", "contains", "T"))
    add("stamp matches ^2026", A("stamp", "matches", "^2026"))
    add("stamp within_last_days 3", A("stamp", "within_last_days", 3))
    add("stamp more_than_days_ago 3", A("stamp", "more_than_days_ago", 3))
    add("plan second (same-time tie)", A("plan", "eq", "second"))
    add("plan first (same-time tie)", A("plan", "eq", "first"))
    add("devices eq [web, ios]", A("devices", "eq", ["web", "ios"]))
    add("devices eq [ios, web]", A("devices", "eq", ["ios", "web"]))
    add("devices eq [ios]", A("devices", "eq", ["ios"]))
    add("devices eq [ios, ios]", A("devices", "eq", ["ios", "ios"]))
    add("devices eq []", A("devices", "eq", []))
    add("devices contains ios", A("devices", "contains", "ios"))
    add("devices in [[ios,ios],[]]", A("devices", "in", [["ios", "ios"], []]))
    add("devices starts_with w", A("devices", "starts_with", "w"))
    add("ltv eq 2^53+1 (f64)", A("ltv", "eq", 9007199254740993))
    add("ltv eq 2^53 (f64)", A("ltv", "eq", 9007199254740992))
    add("ltv eq 0.30000000000000004", A("ltv", "eq", 0.30000000000000004))
    add("ltv gt 0.3", A("ltv", "gt", 0.3))
    add("email contains ë", A("email", "contains", "ë"))
    add("email contains example (case)", A("email", "contains", "example"))
    add("email matches (?i)example", A("email", "matches", "(?i)example\\.com$"))
    add("email matches \\+tag", A("email", "matches", "\\+tag@"))
    add("email starts_with Zo", A("email", "starts_with", "Zoë"))
    add("language eq empty string", A("language", "eq", ""))
    add("language starts_with empty", A("language", "starts_with", ""))
    add("language contains empty", A("language", "contains", ""))
    add("language matches empty", A("language", "matches", ""))
    add("signup within_last_days 7", A("signup_date", "within_last_days", 7))
    add("signup within_last_days 1", A("signup_date", "within_last_days", 1))
    add("signup more_than_days_ago 7", A("signup_date", "more_than_days_ago", 7))
    add("signup more_than_days_ago 1", A("signup_date", "more_than_days_ago", 1))
    add("bucket lt 5000", {"random_bucket": {"op": "lt", "value": 5000}})
    add("bucket eq alias bucket", {"random_bucket": {"op": "eq", "value": sql.bucket_of("email:a@x.io")}})
    add("DE", A("country", "eq", "DE"), id="00000000-0000-4000-8000-00000000e001")
    add("DE and login", {"all": [{"in_segment": "00000000-0000-4000-8000-00000000e001"},
                                 E("login", "gte", 1)]})
    add("not DE", {"not": {"in_segment": "00000000-0000-4000-8000-00000000e001"}})
    add("nobody", {"any": []})
    add("not nobody", {"not": {"any": []}})
    return F


def days():
    d, out = FIRST_DAY, []
    while d <= LAST_DAY:
        out.append(d)
        d += dt.timedelta(days=1)
    return out


def headcount_sizes(hc, workdir, ndjson, filters_path, tz):
    data = os.path.join(workdir, "hc-" + tz.replace("/", "_"))
    shutil.rmtree(data, ignore_errors=True)
    run = lambda *a: subprocess.run([hc, "--data-dir", data, *a], capture_output=True, text=True)
    r = run("workspaces", "create", "edge", "--time-zone", tz)
    if r.returncode:
        raise RuntimeError(r.stderr)
    r = run("import", "--workspace", "edge", ndjson)
    if r.returncode:
        raise RuntimeError("import: " + r.stderr)
    r = run("eval", "--workspace", "edge", "--filters", filters_path,
            "--from", FIRST_DAY.isoformat(), "--to", LAST_DAY.isoformat())
    if r.returncode:
        raise RuntimeError("eval: " + r.stderr)
    return {x["name"]: x["sizes"] for x in json.loads(r.stdout)["results"]}


def run(hc: str, workdir: str, extra_filters: list[dict] = (), log=print) -> list[dict]:
    """Sizes every edge filter (and extra_filters) on every day in the three engines, in
    two time zones; returns the differences."""
    os.makedirs(workdir, exist_ok=True)
    ndjson = os.path.join(workdir, "edge.ndjson")
    with open(ndjson, "w") as f:
        f.write("\n".join(dataset()) + "\n")
    entries = filters() + [e for e in extra_filters]
    filters_path = os.path.join(workdir, "edge-filters.json")
    with open(filters_path, "w") as f:
        json.dump(entries, f)
    norm = os.path.join(workdir, "edge-norm")
    # Both normalizers must agree (the DuckDB one is what the benchmark uses).
    c1 = sql.normalize_duckdb(ndjson, norm)
    c2 = sql.normalize(ndjson, norm + "-py")
    assert all(c1[k] == c2[k] for k in c1), (c1, c2)
    diffs = []
    for tz in ("UTC", "America/New_York"):
        cal = sql.Calendar(tz)
        got = {"headcount": headcount_sizes(hc, workdir, ndjson, filters_path, tz)}
        for E in (sql.DuckDB, sql.ChDB):
            e = E()
            e.load(norm)
            got[e.name] = sql.sizes(e, entries, days(), cal, combined=True)
        if tz == "UTC":  # the translator's two strategies must agree too
            got["DuckDB per-segment"] = sql.sizes(_loaded(norm), entries, days(), cal, combined=False)
        for e in entries:
            n = e["name"]
            for d in days():
                k = d.isoformat()
                vals = {engine: got[engine][n][k] for engine in got}
                if len(set(vals.values())) > 1:
                    diffs.append({"tz": tz, "filter": n, "day": k, "sizes": vals,
                                  "definition": e["filter"]})
    return diffs


def _loaded(norm):
    e = sql.DuckDB()
    e.load(norm)
    return e


def summarize(diffs: list[dict]) -> list[dict]:
    """One line per (tz, filter): the first differing day, and how many days differ."""
    out = {}
    for d in diffs:
        k = (d["tz"], d["filter"])
        if k not in out:
            out[k] = dict(d, days_differing=0)
        out[k]["days_differing"] += 1
    return list(out.values())


if __name__ == "__main__":
    diffs = run(sys.argv[1], sys.argv[2])
    for d in summarize(diffs):
        print(f"{d['tz']:17s} {d['filter']:34s} first {d['day']} ({d['days_differing']} days) "
              f"{json.dumps(d['sizes'])}  {json.dumps(d['definition'])}")
    print(f"{len(diffs)} differing (filter, day, zone) sizes")
