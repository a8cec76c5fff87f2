"""Segment filters as SQL, for DuckDB and for ClickHouse (chDB), written from
/work/shared/spec/segments.md (and docs/segments.md, "headcount's choices") alone.

Nothing here comes from headcount's Rust engine: it is a second, independent reading of
the spec, used by bench/run both as a speed baseline and as an oracle (every size must
agree with headcount's).

The data model (normalized tables, loaded from /users/track NDJSON bodies):

    users     uid, bucket (random_bucket, computed here in Python), first_us (the time
              of the user's earliest fact, computed by the engine at load)
    touches   uid, t                          one row per attribute object (a fact even
                                              when it sets nothing)
    attrs     uid, t, seq, name, kind, s, n, b, d, dn, a
              one row per attribute write; kind is str|num|bool|dt|arr|null (null:
              unset); s/n/b/(d, dn)/a hold the value of that kind (others are
              placeholders); a datetime is exact: d whole seconds since the epoch (UTC),
              dn nanoseconds 0..999999999; seq is the order of the write in the input (a
              tie-break between writes at the same microsecond)
    events    uid, t, name
    purchases uid, t, product

Fact times are UTC microseconds (BIGINT), truncated toward the past: every instant they
are compared with (a local midnight) is a whole second, so floor(t) < T exactly when
t < T. Datetime attribute values are compared with operands written to the nanosecond,
so they keep every digit written (up to nanoseconds). The meaning, restated from segments.md:

* "as of T" uses the facts with time < T; a user exists from its earliest fact; a user
  that does not exist before T is in no segment.
* an attribute's value as of T is its latest write before T (a null write unsets it).
* a count's window is [start(R - W + 1), T), R the day containing the instant just
  before T; no within_days: all time before T.
* a missing attribute makes every operator false except not_exists, ne and not_in; a
  value of the wrong kind makes the operator false; ne / not_in are exactly not eq /
  not in.
* numbers compare as f64; a string that is an ISO-8601 date-time with an explicit offset
  is a datetime (when written, and as an eq/in operand); ordering operands may also be a
  bare date or an offset-less date-time, read as UTC.
* random_bucket: first 8 bytes of SHA-256(external_id), big-endian u64, mod 10000.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import time
from zoneinfo import ZoneInfo

try:  # orjson is much faster; json is the fallback
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover
    _loads = json.loads

# ---------------------------------------------------------------------------------------
# Instants

_EPOCH_DAYS: dict[str, int] = {}


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_DT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,:](\d{1,9}))?)?"
    r"(Z|z|[+-]\d{1,2}(?::?\d{2})?)?$"
)
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def _valid_date(y: int, m: int, d: int) -> bool:
    try:
        _dt.date(y, m, d)
        return True
    except ValueError:
        return False


def _offset_seconds(off: str) -> int:
    if off in ("Z", "z"):
        return 0
    sign = -1 if off[0] == "-" else 1
    body = off[1:].replace(":", "")
    if len(body) <= 2:
        h, mi = int(body), 0
    else:
        h, mi = int(body[:-2]), int(body[-2:])
    if h > 23 or mi > 59:
        raise ValueError(off)
    return sign * (h * 3600 + mi * 60)


def parse_datetime_ns(s: str, need_offset: bool = True) -> int | None:
    """UTC nanoseconds (exact) of an ISO-8601 date-time (with an explicit offset unless
    need_offset is False: then no offset means UTC); None if it is not one."""
    m = _DT.match(s)
    if not m:
        return None
    y, mo, d, h, mi, sec, frac, off = m.groups()
    if off is None and need_offset:
        return None
    y, mo, d, h, mi = int(y), int(mo), int(d), int(h), int(mi)
    sec = int(sec) if sec else 0
    if not _valid_date(y, mo, d) or h > 23 or mi > 59 or sec > 59:
        return None
    try:
        offs = _offset_seconds(off) if off else 0
    except ValueError:
        return None
    ns = int((frac + "000000000")[:9]) if frac else 0
    days = _days_from_civil(y, mo, d)
    return ((days * 86400 + h * 3600 + mi * 60 + sec - offs) * 1_000_000_000) + ns


def parse_datetime(s: str, need_offset: bool = True) -> int | None:
    """UTC microseconds, truncated toward the past (a fact's time)."""
    ns = parse_datetime_ns(s, need_offset)
    return None if ns is None else ns // 1000


def parse_ordering_operand(v) -> int | None:
    """A datetime operand of gt/gte/lt/lte, in UTC nanoseconds: with an offset, or read
    as UTC without one, or a bare date (its UTC midnight)."""
    if not isinstance(v, str):
        return None
    t = parse_datetime_ns(v, need_offset=False)
    if t is not None:
        return t
    m = _DATE.match(v)
    if m and _valid_date(int(m[1]), int(m[2]), int(m[3])):
        return _days_from_civil(int(m[1]), int(m[2]), int(m[3])) * 86_400 * 1_000_000_000
    return None


def parse_time_fast(s: str) -> int | None:
    """parse_datetime for the common 'YYYY-MM-DDTHH:MM:SS[.f]Z' shape, falling back."""
    if len(s) >= 20 and s[-1] == "Z" and s[10] == "T" and s[13] == ":" and s[16] == ":":
        day = _EPOCH_DAYS.get(s[:10])
        if day is None:
            t = parse_datetime(s[:10] + "T00:00:00Z")
            if t is None:
                return parse_datetime(s, need_offset=False)
            day = t // 86_400_000_000
            _EPOCH_DAYS[s[:10]] = day
        try:
            h, mi, sec = int(s[11:13]), int(s[14:16]), int(s[17:19])
        except ValueError:
            return parse_datetime(s, need_offset=False)
        if len(s) == 20:
            us = 0
        elif s[19] == "." and s[20:-1].isdigit():
            us = int((s[20:-1] + "000000")[:6])
        else:
            return parse_datetime(s, need_offset=False)
        return ((day * 86400 + h * 3600 + mi * 60 + sec) * 1_000_000) + us
    return parse_datetime(s, need_offset=False)


def bucket_of(key: str) -> int:
    """random_bucket: SHA-256, first 8 bytes big-endian, mod 10000."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % 10000


# ---------------------------------------------------------------------------------------
# Days

class Calendar:
    """Calendar days of a workspace's IANA time zone."""

    def __init__(self, tz: str = "UTC"):
        self.tz = ZoneInfo(tz)

    def start(self, day: _dt.date) -> int:
        """UTC microseconds of local midnight beginning `day`."""
        local = _dt.datetime(day.year, day.month, day.day, tzinfo=self.tz)
        return int(local.timestamp()) * 1_000_000

    def day_of(self, t_us: int) -> _dt.date:
        return _dt.datetime.fromtimestamp(t_us / 1e6, tz=self.tz).date()

    def completed(self, day: _dt.date) -> tuple[int, _dt.date]:
        """(T, R) of the size on a completed day: T = start(D + 1), R = D."""
        return self.start(day + _dt.timedelta(days=1)), day


# ---------------------------------------------------------------------------------------
# Loading: NDJSON /users/track bodies -> normalized Parquet files

IDENT_KEYS = {"external_id", "user_alias", "braze_id", "_time", "_update_existing_only"}


def _user_key(obj):
    """(namespace key, bucket key) of the user an object names."""
    if "external_id" in obj and obj["external_id"] is not None:
        x = str(obj["external_id"])
        return ("e", x), x
    if "user_alias" in obj and isinstance(obj["user_alias"], dict):
        a = obj["user_alias"]
        n, l = str(a.get("alias_name")), str(a.get("alias_label"))
        return ("a", l, n), l + ":" + n
    if "braze_id" in obj:
        x = str(obj["braze_id"])
        return ("b", x), x
    return None, None


class Normalizer:
    """Streams NDJSON lines into column lists, flushed to Parquet in chunks."""

    CHUNK = 2_000_000

    def __init__(self, out_dir: str, now_us: int | None = None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa, self.pq = pa, pq
        self.out = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.now = now_us if now_us is not None else int(time.time() * 1e6)
        self.uids: dict = {}
        self.buckets: list[int] = []
        self.seq = 0
        self.lines = 0
        self.schemas = {
            "touches": pa.schema([("uid", pa.uint32()), ("t", pa.int64())]),
            "attrs": pa.schema([
                ("uid", pa.uint32()), ("t", pa.int64()), ("seq", pa.int64()),
                ("name", pa.string()), ("kind", pa.string()), ("s", pa.string()),
                ("n", pa.float64()), ("b", pa.bool_()), ("d", pa.int64()), ("dn", pa.int32()),
                ("a", pa.list_(pa.string()))]),
            "events": pa.schema([("uid", pa.uint32()), ("t", pa.int64()), ("name", pa.string())]),
            "purchases": pa.schema([("uid", pa.uint32()), ("t", pa.int64()), ("product", pa.string())]),
        }
        self.cols = {k: {f.name: [] for f in s} for k, s in self.schemas.items()}
        self.writers = {k: pq.ParquetWriter(os.path.join(out_dir, k + ".parquet"), s)
                        for k, s in self.schemas.items()}

    def _uid(self, obj):
        key, bkey = _user_key(obj)
        if key is None:
            return None
        u = self.uids.get(key)
        if u is None:
            u = len(self.buckets)
            self.uids[key] = u
            self.buckets.append(bucket_of(bkey))
        return u

    def _clamp(self, t):
        return self.now if t is None or t > self.now else t

    def line(self, raw: bytes | str):
        if not raw.strip():
            return
        self.lines += 1
        body = _loads(raw)
        c = self.cols
        ta, te, tp, tt = c["attrs"], c["events"], c["purchases"], c["touches"]
        for obj in body.get("attributes") or ():
            u = self._uid(obj)
            if u is None:
                continue
            t = parse_time_fast(obj["_time"]) if isinstance(obj.get("_time"), str) else None
            t = self.now if t is None else t  # attributes: _time, or the moment of import
            tt["uid"].append(u)
            tt["t"].append(t)
            for k, v in obj.items():
                if k in IDENT_KEYS:
                    continue
                kind, s, n, b, d, dn, a = "null", "", 0.0, False, 0, 0, []
                if v is None:
                    pass
                elif isinstance(v, bool):
                    kind, b = "bool", v
                elif isinstance(v, (int, float)):
                    kind, n = "num", float(v)
                elif isinstance(v, str):
                    dt = parse_datetime_ns(v)
                    if dt is not None:
                        kind, d, dn = "dt", dt // 1_000_000_000, dt % 1_000_000_000
                    else:
                        kind, s = "str", v
                elif isinstance(v, list) and all(isinstance(x, str) for x in v):
                    kind, a = "arr", v
                else:
                    continue  # not a valid attribute value (headcount rejects the line)
                ta["uid"].append(u); ta["t"].append(t); ta["seq"].append(self.seq)
                ta["name"].append(k); ta["kind"].append(kind); ta["s"].append(s)
                ta["n"].append(n); ta["b"].append(b); ta["d"].append(d); ta["dn"].append(dn)
                ta["a"].append(a)
                self.seq += 1
        for obj in body.get("events") or ():
            u = self._uid(obj)
            if u is None or not isinstance(obj.get("name"), str):
                continue
            te["uid"].append(u)
            te["t"].append(self._clamp(parse_time_fast(obj["time"])))
            te["name"].append(obj["name"])
        for obj in body.get("purchases") or ():
            u = self._uid(obj)
            if u is None:
                continue
            tv = obj.get("time")
            tp["uid"].append(u)
            tp["t"].append(self._clamp(parse_time_fast(tv) if isinstance(tv, str) else None))
            tp["product"].append(str(obj.get("product_id")))
        if len(te["uid"]) >= self.CHUNK:
            self.flush()

    def flush(self):
        for k, cols in self.cols.items():
            if cols["uid"]:
                table = self.pa.Table.from_pydict(cols, schema=self.schemas[k])
                self.writers[k].write_table(table)
                for v in cols.values():
                    v.clear()

    def finish(self) -> dict:
        self.flush()
        for w in self.writers.values():
            w.close()
        pa = self.pa
        users = pa.table({"uid": pa.array(range(len(self.buckets)), pa.uint32()),
                          "bucket": pa.array(self.buckets, pa.uint16())})
        self.pq.write_table(users, os.path.join(self.out, "users_raw.parquet"))
        rows = {k: self.pq.ParquetFile(os.path.join(self.out, k + ".parquet")).metadata.num_rows
                for k in self.schemas}
        return {"users": len(self.buckets), "attribute_objects": rows["touches"],
                "attribute_writes": rows["attrs"], "events": rows["events"],
                "purchases": rows["purchases"], "lines": self.lines}


def _clear_parquet(out_dir: str):
    """Removes earlier Parquet files: the engines read every `touches*.parquet`, …"""
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        if f.endswith(".parquet"):
            os.remove(os.path.join(out_dir, f))


def normalize(ndjson_path: str, out_dir: str, now_us: int | None = None) -> dict:
    """NDJSON -> out_dir/{users_raw,touches,attrs,events,purchases}.parquet."""
    _clear_parquet(out_dir)
    n = Normalizer(out_dir, now_us)
    with open(ndjson_path, "rb") as f:
        for raw in f:
            n.line(raw)
    return n.finish()


_IDENT_SQL = ", ".join("'" + k + "'" for k in sorted(IDENT_KEYS))
_ID_STRUCT = "external_id VARCHAR, user_alias STRUCT(alias_name VARCHAR, alias_label VARCHAR), braze_id VARCHAR"


def _key_sql(x: str) -> tuple[str, str]:
    """(namespace key, bucket key) SQL of a struct x naming a user."""
    key = (f"CASE WHEN {x}.external_id IS NOT NULL THEN 'e' || chr(0) || {x}.external_id "
           f"WHEN {x}.user_alias IS NOT NULL THEN 'a' || chr(0) || {x}.user_alias.alias_label "
           f"|| chr(0) || {x}.user_alias.alias_name "
           f"WHEN {x}.braze_id IS NOT NULL THEN 'b' || chr(0) || {x}.braze_id END")
    bkey = (f"CASE WHEN {x}.external_id IS NOT NULL THEN {x}.external_id "
            f"WHEN {x}.user_alias IS NOT NULL THEN {x}.user_alias.alias_label || ':' "
            f"|| {x}.user_alias.alias_name WHEN {x}.braze_id IS NOT NULL THEN {x}.braze_id END")
    return key, bkey


def _line_chunks(path: str, lines: int, out_path: str):
    """Yields (first line number, path of a file holding the next `lines` lines of
    `path`), rewriting the same file each time."""
    first = 0
    with open(path, "rb") as src:
        while True:
            n = 0
            with open(out_path, "wb") as out:
                for line in src:
                    out.write(line)
                    n += 1
                    if n == lines:
                        break
            if n == 0:
                break
            yield first, out_path
            first += n
            if n < lines:
                break
    if os.path.exists(out_path):
        os.remove(out_path)


NORMALIZE_VERSION = 2  # bump when the normalized tables change


def normalize_duckdb(ndjson_path: str, out_dir: str, now_us: int | None = None,
                     threads: int | None = None, chunk_lines: int = 1_000_000) -> dict:
    """The same normalization as `normalize`, done by DuckDB's JSON reader (fast); Python
    only computes random buckets and reads the date-times DuckDB's cast does not.

    The NDJSON is read `chunk_lines` lines at a time (each chunk's tables would
    otherwise all be held at once: ~30 GB of spill at 10M users); user ids are kept in
    one table across chunks, and each chunk writes its own Parquet files
    (`events-0000.parquet`, …), which the engines read as one table."""
    import duckdb
    import pyarrow as pa

    _clear_parquet(out_dir)
    now = now_us if now_us is not None else int(time.time() * 1e6)
    c = duckdb.connect(":memory:")
    c.execute("SET TimeZone = 'UTC'")
    c.execute(f"SET temp_directory = '{os.path.join(out_dir, 'duckdb.tmp')}'")  # spill here
    if threads:
        c.execute(f"SET threads = {int(threads)}")

    def py_time(strings):  # a fact's time, microseconds
        return pa.array([None if s is None else parse_time_fast(s) for s in strings.to_pylist()],
                        pa.int64())

    def py_datetime(strings):  # an attribute value: (seconds, nanoseconds) if a datetime
        secs, nanos = [], []
        for s in strings.to_pylist():
            ns = None if s is None else parse_datetime_ns(s)
            secs.append(None if ns is None else ns // 1_000_000_000)
            nanos.append(None if ns is None else ns % 1_000_000_000)
        return pa.StructArray.from_arrays([pa.array(secs, pa.int64()), pa.array(nanos, pa.int32())],
                                          names=["d", "dn"])

    c.create_function("py_time", py_time, ["VARCHAR"], "BIGINT",
                      type="arrow", null_handling="special")
    c.create_function("py_datetime", py_datetime, ["VARCHAR"], "STRUCT(d BIGINT, dn INTEGER)",
                      type="arrow", null_handling="special")

    def when(col):  # an instant: DuckDB's cast when it reads it, else ours
        return (f"CASE WHEN try_cast({col} AS TIMESTAMPTZ) IS NOT NULL "
                f"THEN epoch_us(try_cast({col} AS TIMESTAMPTZ)) ELSE py_time({col}) END")

    c.execute("CREATE TEMP TABLE ukeys (key VARCHAR, bkey VARCHAR, uid BIGINT)")
    counts = {"attribute_objects": 0, "attribute_writes": 0, "events": 0, "purchases": 0}
    chunk_file = os.path.join(out_dir, "chunk.ndjson")
    for k, (offset, chunk) in enumerate(_line_chunks(ndjson_path, chunk_lines, chunk_file)):
        _normalize_chunk(c, chunk, offset, k, out_dir, now, when, counts)
    # Users: dense ids; buckets computed here, in Python.
    rel = c.sql("SELECT uid, bkey FROM ukeys ORDER BY uid")
    keys = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
    buckets = pa.array([bucket_of(k) for k in keys.column("bkey").to_pylist()], pa.uint16())
    users_raw = pa.table({"uid": keys.column("uid").cast(pa.uint32()), "bucket": buckets})
    c.register("users_raw_arrow", users_raw)
    q = os.path.join(out_dir, "users_raw.parquet").replace("'", "''")
    c.execute(f"COPY (SELECT * FROM users_raw_arrow) TO '{q}' (FORMAT parquet)")
    counts["users"] = len(users_raw)
    c.close()
    return counts


def _normalize_chunk(c, ndjson_path: str, offset: int, k: int, out_dir: str, now: int, when,
                     counts: dict):
    """One chunk of `normalize_duckdb`: lines numbered from `offset`; new user keys get
    the next ids in `ukeys`."""
    path = ndjson_path.replace("'", "''")
    c.execute(f"""
        CREATE TEMP TABLE raw AS
        SELECT {offset} + row_number() OVER () AS line, attributes, events, purchases
        FROM read_json('{path}', format = 'newline_delimited', maximum_object_size = 268435456,
          columns = {{attributes: 'JSON[]',
                      events: 'STRUCT({_ID_STRUCT}, name VARCHAR, time VARCHAR)[]',
                      purchases: 'STRUCT({_ID_STRUCT}, product_id VARCHAR, time VARCHAR)[]'}})""")
    ek, eb = _key_sql("x")
    c.execute(f"""
        CREATE TEMP TABLE ev AS
        SELECT {ek} AS key, {eb} AS bkey, x.name AS name, least({when('x.time')}, {now}) AS t
        FROM (SELECT unnest(events) AS x FROM raw) WHERE x.name IS NOT NULL""")
    c.execute(f"""
        CREATE TEMP TABLE pu AS
        SELECT {ek} AS key, {eb} AS bkey, x.product_id AS product,
               coalesce(least({when('x.time')}, {now}), {now}) AS t
        FROM (SELECT unnest(purchases) AS x FROM raw)""")
    c.execute("""
        CREATE TEMP TABLE ob AS
        SELECT line, oi, obj,
               {'external_id': json_extract_string(obj, '$.external_id'),
                'user_alias': CASE WHEN json_type(obj, '$.user_alias') = 'OBJECT' THEN
                    {'alias_name': json_extract_string(obj, '$.user_alias.alias_name'),
                     'alias_label': json_extract_string(obj, '$.user_alias.alias_label')} END,
                'braze_id': json_extract_string(obj, '$.braze_id')} AS x,
               json_extract_string(obj, '$._time') AS time_s
        FROM (SELECT line, unnest(attributes) AS obj, unnest(range(len(attributes))) AS oi FROM raw)""")
    c.execute(f"""
        CREATE TEMP TABLE tou AS
        SELECT line, oi, obj, {ek} AS key, {eb} AS bkey,
               coalesce({when('time_s')}, {now}) AS t
        FROM ob WHERE {ek} IS NOT NULL""")
    c.execute("DROP TABLE ob")
    c.execute("DROP TABLE raw")
    c.execute(f"""
        CREATE TEMP TABLE aw AS
        WITH kv AS (
            SELECT tou.line, tou.oi, tou.key, tou.t, je.key AS name, je.value AS v, je.type AS ty
            FROM tou, json_each(tou.obj) AS je
            WHERE je.key NOT IN ({_IDENT_SQL})),
        typed AS (
            SELECT *, CASE WHEN ty = 'VARCHAR' THEN json_extract_string(v, '$') END AS str,
                   CASE WHEN ty = 'ARRAY' THEN coalesce(list_bool_and(list_transform(
                        json_extract(v, '$[*]'), lambda e: json_type(e) = 'VARCHAR')), true) END AS arr_ok
            FROM kv),
        dated AS (
            SELECT *, CASE WHEN str IS NOT NULL AND regexp_matches(str, '^\d{{4}}-\d{{2}}-\d{{2}}[Tt ]')
                           THEN py_datetime(str) END AS dts
            FROM typed)
        SELECT line, oi, key, t, name, dts.d AS dt, dts.dn AS dtn,
               CASE WHEN ty = 'NULL' THEN 'null'
                    WHEN ty = 'BOOLEAN' THEN 'bool'
                    WHEN ty IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT') THEN 'num'
                    WHEN ty = 'VARCHAR' AND dt IS NOT NULL THEN 'dt'
                    WHEN ty = 'VARCHAR' THEN 'str'
                    WHEN ty = 'ARRAY' AND arr_ok THEN 'arr' END AS kind,
               CASE WHEN ty = 'VARCHAR' AND dt IS NULL THEN str ELSE '' END AS s,
               CASE WHEN ty IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')
                    THEN CAST(json_extract_string(v, '$') AS DOUBLE) ELSE 0 END AS n,
               CASE WHEN ty = 'BOOLEAN' THEN json_extract_string(v, '$') = 'true' ELSE false END AS b,
               coalesce(dt, 0) AS d, CAST(coalesce(dtn, 0) AS INTEGER) AS dn,
               CASE WHEN ty = 'ARRAY' AND arr_ok THEN json_extract_string(v, '$[*]')
                    ELSE []::VARCHAR[] END AS a
        FROM dated""")
    c.execute("DELETE FROM aw WHERE kind IS NULL")  # objects / mixed arrays: not values
    # New users: the next dense ids, in order of first appearance (any order would do).
    c.execute("""
        INSERT INTO ukeys
        SELECT key, bkey, (SELECT count(*) FROM ukeys) + row_number() OVER (ORDER BY first, key) - 1
        FROM (SELECT key, any_value(bkey) AS bkey, min(first) AS first
              FROM (SELECT key, bkey, min(line) AS first FROM tou GROUP BY ALL
                    UNION ALL SELECT key, bkey, 9223372036854775807 FROM ev GROUP BY ALL
                    UNION ALL SELECT key, bkey, 9223372036854775807 FROM pu GROUP BY ALL)
              WHERE key IS NOT NULL GROUP BY key) AS n
        WHERE NOT EXISTS (SELECT 1 FROM ukeys u WHERE u.key = n.key)""")
    q = lambda name: os.path.join(out_dir, f"{name}-{k:04d}.parquet").replace("'", "''")
    c.execute(f"""COPY (SELECT CAST(k.uid AS UINTEGER) AS uid, t FROM tou JOIN ukeys k USING (key))
                  TO '{q('touches')}' (FORMAT parquet)""")
    # seq: the order of the write in the input (line, then object in the line).
    c.execute(f"""COPY (SELECT CAST(k.uid AS UINTEGER) AS uid, t,
                         line * 65536 + oi AS seq, name, kind, s, n, b, d, dn, a
                  FROM aw JOIN ukeys k USING (key)) TO '{q('attrs')}' (FORMAT parquet)""")
    c.execute(f"""COPY (SELECT CAST(k.uid AS UINTEGER) AS uid, t, name FROM ev JOIN ukeys k USING (key))
                  TO '{q('events')}' (FORMAT parquet)""")
    c.execute(f"""COPY (SELECT CAST(k.uid AS UINTEGER) AS uid, t, product FROM pu JOIN ukeys k USING (key))
                  TO '{q('purchases')}' (FORMAT parquet)""")
    for name, table in (("attribute_objects", "tou"), ("attribute_writes", "aw"),
                        ("events", "ev"), ("purchases", "pu")):
        counts[name] += c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    for table in ("tou", "aw", "ev", "pu"):
        c.execute(f"DROP TABLE {table}")


# ---------------------------------------------------------------------------------------
# Engines

class Engine:
    """A loaded SQL engine: `name`, `dialect`, `load(dir)`, `scalar(sql)`, `row(sql)`."""

    name = "?"
    dialect: "Dialect"

    def __init__(self):
        # Numbers of segments whose one combined query ran out of memory.
        self.too_big: set[int] = set()


class DuckDB(Engine):
    name = "DuckDB"

    def __init__(self, path: str | None = None, temp_dir: str | None = None):
        import duckdb

        super().__init__()
        self.duckdb = duckdb
        self.con = duckdb.connect(path or ":memory:")
        if temp_dir:
            self.con.execute(f"SET temp_directory = '{temp_dir}'")
        self.dialect = DuckDialect()
        self.version = duckdb.__version__

    def load(self, d: str):
        p = lambda k: os.path.join(d, k + ("*.parquet" if k != "users_raw" else ".parquet")).replace("'", "''")
        c = self.con
        c.execute(f"CREATE TABLE users_raw AS SELECT * FROM read_parquet('{p('users_raw')}')")
        c.execute(f"CREATE TABLE touches AS SELECT * FROM read_parquet('{p('touches')}')")
        c.execute(f"CREATE TABLE attrs AS SELECT * FROM read_parquet('{p('attrs')}') ORDER BY name, uid, t")
        c.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{p('events')}') ORDER BY name, t")
        c.execute(f"CREATE TABLE purchases AS SELECT * FROM read_parquet('{p('purchases')}') ORDER BY product, t")
        c.execute("""
            CREATE TABLE users AS
            SELECT r.uid, r.bucket, f.first_us
            FROM users_raw r JOIN (
                SELECT uid, min(t) AS first_us FROM (
                    SELECT uid, t FROM touches UNION ALL
                    SELECT uid, t FROM events UNION ALL
                    SELECT uid, t FROM purchases) GROUP BY uid) f ON f.uid = r.uid""")
        c.execute("DROP TABLE users_raw")

    def row(self, sql: str):
        return self.con.execute(sql).fetchone()

    def memory_bytes(self) -> int | None:
        try:
            return int(self.con.execute(
                "SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()[0])
        except Exception:
            return None


class ChDB(Engine):
    name = "chDB"

    def __init__(self, path: str | None = None):
        import chdb

        super().__init__()
        self.chdb = chdb
        self.conn = chdb.connect(path or ":memory:")
        self.cur = self.conn.cursor()
        self.dialect = ClickHouseDialect()
        self.version = getattr(chdb, "engine_version", chdb.__version__)

    def _exec(self, sql: str):
        self.cur.execute(sql)

    def load(self, d: str):
        p = lambda k: (os.path.join(d, k + ("*.parquet" if k != "users_raw" else ".parquet"))
                       .replace("\\", "\\\\").replace("'", "\\'"))
        for name in ("users", "users_raw", "touches", "attrs", "events", "purchases"):
            self._exec(f"DROP TABLE IF EXISTS {name}")
        self._exec("CREATE TABLE users_raw (uid UInt32, bucket UInt16) ENGINE = MergeTree ORDER BY uid")
        self._exec("CREATE TABLE touches (uid UInt32, t Int64) ENGINE = MergeTree ORDER BY (uid, t)")
        self._exec("""CREATE TABLE attrs (uid UInt32, t Int64, seq Int64, name LowCardinality(String),
            kind LowCardinality(String), s String, n Float64, b Bool, d Int64, dn Int32,
            a Array(String))
            ENGINE = MergeTree ORDER BY (name, uid, t)""")
        self._exec("""CREATE TABLE events (uid UInt32, t Int64, name LowCardinality(String))
            ENGINE = MergeTree ORDER BY (name, t)""")
        self._exec("""CREATE TABLE purchases (uid UInt32, t Int64, product LowCardinality(String))
            ENGINE = MergeTree ORDER BY (product, t)""")
        for name in ("users_raw", "touches", "attrs", "events", "purchases"):
            self._exec(f"INSERT INTO {name} SELECT * FROM file('{p(name)}', Parquet)")
        self._exec("CREATE TABLE users (uid UInt32, bucket UInt16, first_us Int64) ENGINE = MergeTree ORDER BY uid")
        self._exec("""
            INSERT INTO users
            SELECT r.uid, r.bucket, f.first_us
            FROM users_raw AS r INNER JOIN (
                SELECT uid, min(t) AS first_us FROM (
                    SELECT uid, t FROM touches UNION ALL
                    SELECT uid, t FROM events UNION ALL
                    SELECT uid, t FROM purchases) GROUP BY uid) AS f ON f.uid = r.uid""")
        self._exec("DROP TABLE users_raw")
        self._exec("OPTIMIZE TABLE events FINAL")
        self._exec("OPTIMIZE TABLE purchases FINAL")
        self._exec("OPTIMIZE TABLE attrs FINAL")

    def row(self, sql: str):
        self.cur.execute(sql)
        return self.cur.fetchone()

    def memory_bytes(self) -> int | None:
        try:
            r = self.row("SELECT sum(total_bytes) FROM system.tables WHERE database = currentDatabase()")
            return int(r[0])
        except Exception:
            return None


# ---------------------------------------------------------------------------------------
# Dialects

class Dialect:
    true, false = "TRUE", "FALSE"

    def s(self, v: str) -> str:  # string literal
        return "'" + v.replace("'", "''") + "'"

    def f(self, v) -> str:  # f64 literal
        x = float(v)
        if x != x or x in (float("inf"), float("-inf")):
            raise ValueError(f"not a finite number: {v!r}")
        return repr(x)

    def missing(self, kind_col: str) -> str:
        return f"coalesce({kind_col}, '') IN ('', 'null')"


class DuckDialect(Dialect):
    def arr(self, items) -> str:
        return "[" + ", ".join(self.s(x) for x in items) + "]::VARCHAR[]"

    def str_contains(self, col, lit):
        return f"contains({col}, {lit})"

    def arr_has(self, col, lit):
        return f"list_contains({col}, {lit})"

    def starts_with(self, col, lit):
        return f"starts_with({col}, {lit})"

    def regex(self, col, lit):
        return f"regexp_matches({col}, {lit})"  # a search, not a full match

    def count_if(self, cond):
        return f"count_if({cond})"

    def arg_max(self, col, order):
        return f"arg_max({col}, {order})"


class ClickHouseDialect(Dialect):
    true, false = "true", "false"

    def s(self, v: str) -> str:  # ClickHouse string literals take backslash escapes
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def arr(self, items) -> str:
        return "CAST([" + ", ".join(self.s(x) for x in items) + "], 'Array(String)')"

    def str_contains(self, col, lit):
        return f"(position({col}, {lit}) > 0)"

    def arr_has(self, col, lit):
        return f"has({col}, {lit})"

    def starts_with(self, col, lit):
        return f"startsWith({col}, {lit})"

    def regex(self, col, lit):
        return f"match({col}, {lit})"  # RE2, unanchored search

    def count_if(self, cond):
        return f"countIf({cond})"

    def arg_max(self, col, order):
        return f"argMax({col}, {order})"


# ---------------------------------------------------------------------------------------
# Translation

CMP = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class Query:
    """The SQL of one or many filters as of one instant T (reference day R).

    One row per existing user: the users table, LEFT JOINed with one derived table per
    attribute read (its latest value before T) and per distinct count (events / purchases
    in a window). Every leaf is a two-valued boolean over that row.
    """

    def __init__(self, dialect: Dialect, cal: Calendar, T: int, R: _dt.date, by_id: dict):
        self.d, self.cal, self.T, self.R, self.by_id = dialect, cal, T, R, by_id
        self.joins: dict = {}  # key -> (alias, sql)
        self.attr_cols: dict = {}  # attribute name -> set of value columns read

    # -- derived tables
    def _join(self, key, make) -> str:
        if key not in self.joins:
            alias = f"j{len(self.joins)}"
            self.joins[key] = (alias, make)
        return self.joins[key][0]

    def attr(self, name: str, *cols: str) -> str:
        self.attr_cols.setdefault(name, set()).update(cols)
        return self._join(("attr", name), None)

    def window_start(self, w) -> int | None:
        if w is None:
            return None
        return self.cal.start(self.R - _dt.timedelta(days=int(w) - 1))

    def count(self, table: str, column: str, value, w) -> str:
        start = self.window_start(w)
        return self._join((table, column, value, start), None)

    def _join_sql(self, key) -> str:
        d, T = self.d, self.T
        if key[0] == "attr":
            name = key[1]
            cols = ["kind"] + sorted(self.attr_cols.get(name, ()))
            picks = ", ".join(f"{d.arg_max(c, '(t, seq)')} AS {c}" for c in cols)
            return (f"SELECT uid, {picks} FROM attrs WHERE name = {d.s(name)} AND t < {T} "
                    f"GROUP BY uid")
        table, column, value, start = key
        where = [f"t < {T}"]
        if start is not None:
            where.append(f"t >= {start}")
        if value is not None:
            where.append(f"{column} = {d.s(value)}")
        return f"SELECT uid, count(*) AS c FROM {table} WHERE {' AND '.join(where)} GROUP BY uid"

    # -- nodes
    def expr(self, node, depth=0) -> str:
        d = self.d
        if depth > 64:
            raise ValueError("nesting too deep (an in_segment cycle?)")
        if not isinstance(node, dict) or len(node) == 0:
            raise ValueError(f"not a filter node: {node!r}")
        if "all" in node:
            kids = [self.expr(k, depth + 1) for k in node["all"]]
            return "(" + " AND ".join(kids) + ")" if kids else d.true
        if "any" in node:
            kids = [self.expr(k, depth + 1) for k in node["any"]]
            return "(" + " OR ".join(kids) + ")" if kids else d.false
        if "not" in node:
            return f"(NOT {self.expr(node['not'], depth + 1)})"
        if "in_segment" in node:
            target = self.by_id.get(node["in_segment"])
            if target is None:
                raise ValueError(f"unknown segment {node['in_segment']}")
            return self.expr(target, depth + 1)
        if "random_bucket" in node:
            rb = node["random_bucket"]
            return f"(u.bucket {CMP[rb['op']]} {int(rb['value'])})"
        if "event" in node:
            j = self.count("events", "name", node["event"], node.get("within_days"))
            return f"(coalesce({j}.c, 0) {CMP[node['op']]} {int(node['value'])})"
        if "purchase" in node:
            product = None if node["purchase"] == "*" else node["purchase"]
            j = self.count("purchases", "product", product, node.get("within_days"))
            return f"(coalesce({j}.c, 0) {CMP[node['op']]} {int(node['value'])})"
        if "attribute" in node:
            return self.attribute(node["attribute"], node["op"], node.get("value"))
        raise ValueError(f"unknown node {node!r}")

    def _leaf(self, cond: str) -> str:
        # Two-valued: a NULL (no row in the LEFT JOIN) is false.
        return f"coalesce({cond}, {self.d.false})"

    def _eq(self, name: str, v) -> str:
        """The condition `eq v`, NULL-safe (false when missing or of another kind)."""
        d = self.d
        if isinstance(v, bool):
            j = self.attr(name, "b")
            return self._leaf(f"({j}.kind = 'bool' AND {j}.b = {d.true if v else d.false})")
        if isinstance(v, (int, float)):
            j = self.attr(name, "n")
            return self._leaf(f"({j}.kind = 'num' AND {j}.n = {d.f(v)})")
        if isinstance(v, str):
            t = parse_datetime_ns(v)
            if t is not None:
                j = self.attr(name, "d", "dn")
                sec, ns = divmod(t, 1_000_000_000)
                return self._leaf(f"({j}.kind = 'dt' AND {j}.d = {sec} AND {j}.dn = {ns})")
            j = self.attr(name, "s")
            return self._leaf(f"({j}.kind = 'str' AND {j}.s = {d.s(v)})")
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            j = self.attr(name, "a")
            return self._leaf(f"({j}.kind = 'arr' AND {j}.a = {d.arr(v)})")
        return d.false  # no stored value can equal it

    def attribute(self, name: str, op: str, v) -> str:
        d = self.d
        if op in ("exists", "not_exists"):
            j = self.attr(name)
            missing = d.missing(f"{j}.kind")
            return f"({missing})" if op == "not_exists" else f"(NOT {missing})"
        if op == "eq":
            return self._eq(name, v)
        if op == "ne":
            return f"(NOT {self._eq(name, v)})"
        if op in ("in", "not_in"):
            if not isinstance(v, list):
                raise ValueError(f"{op} needs an array")
            any_ = "(" + " OR ".join(self._eq(name, x) for x in v) + ")" if v else d.false
            return f"(NOT {any_})" if op == "not_in" else any_
        if op in ("gt", "gte", "lt", "lte"):
            sym = CMP[op]
            if isinstance(v, bool):
                return d.false
            if isinstance(v, (int, float)):
                j = self.attr(name, "n")
                return self._leaf(f"({j}.kind = 'num' AND {j}.n {sym} {d.f(v)})")
            t = parse_ordering_operand(v)
            if t is None:
                return d.false  # strings, arrays, booleans do not order
            j = self.attr(name, "d", "dn")
            sec, ns = divmod(t, 1_000_000_000)  # (d, dn) compared lexicographically
            return self._leaf(f"({j}.kind = 'dt' AND ({j}.d {sym[0]} {sec} OR "
                              f"({j}.d = {sec} AND {j}.dn {sym} {ns})))")
        if op == "contains":
            if not isinstance(v, str):
                return d.false
            j = self.attr(name, "s", "a")
            lit = d.s(v)
            return self._leaf(f"(({j}.kind = 'str' AND {d.str_contains(f'{j}.s', lit)}) OR "
                              f"({j}.kind = 'arr' AND {d.arr_has(f'{j}.a', lit)}))")
        if op == "starts_with":
            if not isinstance(v, str):
                return d.false
            j = self.attr(name, "s")
            return self._leaf(f"({j}.kind = 'str' AND {d.starts_with(f'{j}.s', d.s(v))})")
        if op == "matches":
            j = self.attr(name, "s")
            return self._leaf(f"({j}.kind = 'str' AND {d.regex(f'{j}.s', d.s(v))})")
        if op in ("within_last_days", "more_than_days_ago"):
            start, T = self.window_start(int(v)), self.T
            assert start % 1_000_000 == 0 and T % 1_000_000 == 0  # midnights: whole seconds
            start, T = start // 1_000_000, T // 1_000_000
            j = self.attr(name, "d")  # against whole seconds, (d, dn) >= (S, 0) iff d >= S
            if op == "within_last_days":
                return self._leaf(f"({j}.kind = 'dt' AND {j}.d >= {start} AND {j}.d < {T})")
            return self._leaf(f"({j}.kind = 'dt' AND {j}.d < {start})")
        raise ValueError(f"unknown operator {op!r}")

    # -- whole statements
    def sql(self, conds: list[str]) -> str:
        """SELECT one count per condition over the users that exist before T."""
        d = self.d
        ctes = [f"{alias} AS ({self._join_sql(key)})" for key, (alias, _) in self.joins.items()]
        joins = "".join(f" LEFT JOIN {alias} ON {alias}.uid = u.uid"
                        for alias, _ in self.joins.values())
        counts = ", ".join(d.count_if(c) for c in conds)
        with_ = ("WITH " + ", ".join(ctes) + " ") if ctes else ""
        return f"{with_}SELECT {counts} FROM users AS u{joins} WHERE u.first_us < {self.T}"


def segment_sql(dialect, cal, filters_by_id, filt, T, R) -> str:
    """One SELECT computing one filter's size as of T."""
    q = Query(dialect, cal, T, R, filters_by_id)
    return q.sql([q.expr(filt)])


def segments_sql(dialect, cal, filters_by_id, filts, T, R) -> str:
    """One SELECT computing every filter's size as of T (shared derived tables)."""
    q = Query(dialect, cal, T, R, filters_by_id)
    conds = [q.expr(f) for f in filts]
    return q.sql(conds)


def by_id_of(entries) -> dict:
    return {e["id"]: e["filter"] for e in entries if e.get("id")}


def sizes(engine, entries, days, cal: Calendar, combined=False, names=None, on_query=None):
    """{name: {day: size}} of completed days; one query per (segment, day), or one per
    day for all segments when combined."""
    by_id = by_id_of(entries)
    chosen = [e for e in entries if names is None or e["name"] in names]
    out = {e["name"]: {} for e in chosen}
    for day in days:
        T, R = cal.completed(day)
        row = None
        if combined and len(chosen) not in engine.too_big:
            try:
                row = engine.row(segments_sql(engine.dialect, cal, by_id, [e["filter"] for e in chosen], T, R))
            except Exception as err:  # the engines' own error types
                if "memory" not in str(err).lower():
                    raise
                # Out of memory (DuckDB at 10M users): one query per segment from now on.
                engine.too_big.add(len(chosen))
        if row is not None:
            for e, v in zip(chosen, row):
                out[e["name"]][day.isoformat()] = int(v)
        else:
            for e in chosen:
                row = engine.row(segment_sql(engine.dialect, cal, by_id, e["filter"], T, R))
                out[e["name"]][day.isoformat()] = int(row[0])
        if on_query:
            on_query(day)
    return out


if __name__ == "__main__":  # print the SQL of one filter: python3 sql.py duckdb FILE NAME DAY
    import sys

    dialect = {"duckdb": DuckDialect(), "clickhouse": ClickHouseDialect()}[sys.argv[1]]
    entries = json.load(open(sys.argv[2]))
    entry = next(e for e in entries if e["name"] == sys.argv[3])
    cal = Calendar(os.environ.get("TZ_NAME", "UTC"))
    T, R = cal.completed(_dt.date.fromisoformat(sys.argv[4]))
    print(segment_sql(dialect, cal, by_id_of(entries), entry["filter"], T, R))
