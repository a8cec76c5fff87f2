//! `headcount serve`: load the data directory and serve the API.

use super::{CmdResult, open, open_shared};
use crate::args::ServeArgs;
use headcount_service::limits::{RedisCounter, WindowCounter};
use headcount_service::store_counter::PostgresCounter;
use headcount_service::{Config, Shared};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Runs the server until SIGINT or SIGTERM.
pub fn run(dir: &Path, args: ServeArgs) -> CmdResult {
    // The port first: a taken one fails before the data directory is touched.
    let listener = bind(args.listen)?;
    let counter: Option<Arc<dyn WindowCounter>> = match &args.redis_url {
        Some(url) => Some(Arc::new(
            RedisCounter::new(url)
                .map_err(|e| format!("--redis-url: {e}"))?
                .leasing(args.rate_limit_lease),
        )),
        None => None,
    };
    let node_name = match args.node_name {
        Some(name) if !name.trim().is_empty() => name,
        Some(_) => return Err("--node-name must not be empty".into()),
        None => format!("{}:{}", host_name(), listener.local_addr()?.port()),
    };
    let metrics_listener = args.metrics_listen.map(bind).transpose()?;
    // On a database, several nodes serve together: no writer lock, each follows the
    // others' appends, and rate limits are counted in the database unless in Redis.
    let clustered = crate::database::chosen().is_some();
    let store: Arc<dyn headcount_store::Store> = if clustered {
        Arc::from(open_shared(dir)?)
    } else {
        Arc::from(open_serving(dir)?)
    };
    let clickhouse = clickhouse(store.as_ref(), &args.clickhouse)?;
    let counter = match (counter, crate::database::chosen()) {
        (None, Some(database)) => Some(Arc::new(
            PostgresCounter::postgres(&database.url)
                .map_err(|e| format!("--database: {e}"))?
                .leasing(args.rate_limit_lease),
        ) as Arc<dyn WindowCounter>),
        (other, _) => other,
    };
    let config = Config {
        backfill_days: args.backfill_days,
        max_track_objects: args.max_track_objects,
        header_read_timeout: Duration::from_secs(args.header_read_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        checkpoints: Some(super::checkpoint_dir(dir)),
        node_name,
        counter,
        metrics_on_api: metrics_listener.is_none(),
        follow_log: clustered,
        clickhouse,
        ..Config::default()
    };
    serve_with_metrics(store, config, listener, metrics_listener)?;
    Ok(ExitCode::SUCCESS)
}

/// The ClickHouse of `--clickhouse-url`, if given; without one, an error when a
/// workspace's engine is `clickhouse` (its API requests could only answer 503).
fn clickhouse(
    store: &dyn headcount_store::Store,
    args: &crate::args::ClickHouseArgs,
) -> Result<Option<headcount_clickhouse::ClickHouse>, Box<dyn std::error::Error>> {
    if !args.clickhouse_url.is_empty() {
        return Ok(Some(super::clickhouse::connect(args)?));
    }
    for ws in store.workspaces()? {
        if store.workspace_engine(ws.id)? == headcount_store::ENGINE_CLICKHOUSE {
            return Err(format!(
                "workspace {} has the engine clickhouse: give --clickhouse-url http://HOST:8123 \
                 (or set HEADCOUNT_CLICKHOUSE_URL)",
                ws.name
            )
            .into());
        }
    }
    Ok(None)
}

/// Takes the address to listen on, before anything is loaded or printed: a port that
/// is taken fails at once, saying so and how to choose another.
pub fn bind(listen: SocketAddr) -> Result<TcpListener, Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(listen).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            format!(
                "cannot listen on {listen}: the port is already in use (by another server, \
                 perhaps another headcount); choose a free one with --listen {}:PORT",
                listen.ip()
            )
        } else {
            format!("cannot listen on {listen}: {e}")
        }
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the store on `listener` (from [`bind`]) at once, its indexes loading in the
/// background (the API answers 503 until they are ready).
pub fn serve(
    store: Arc<dyn headcount_store::Store>,
    config: Config,
    listener: TcpListener,
) -> Result<(), Box<dyn std::error::Error>> {
    serve_with_metrics(store, config, listener, None)
}

/// [`serve`], with `GET /metrics` on `metrics` (from [`bind`]) if given.
pub fn serve_with_metrics(
    store: Arc<dyn headcount_store::Store>,
    mut config: Config,
    listener: TcpListener,
    metrics: Option<TcpListener>,
) -> Result<(), Box<dyn std::error::Error>> {
    let open_files = raise_open_file_limit();
    // Each connection is a file; the store and the runtime need a few more.
    if let Some(limit) = open_files {
        let room = usize::try_from(limit.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
        if config.max_connections > room {
            tracing::warn!(
                max_connections = config.max_connections,
                open_file_limit = limit,
                "the open-file limit leaves room for fewer connections; lowering the cap to {room}"
            );
            config.max_connections = room.max(1);
        }
    }
    let runtime = runtime_with_own_arenas()?;
    // After the runtime's workers took their arenas: every later thread shares.
    cap_malloc_arenas(if config.follow_log {
        NODE_MALLOC_ARENAS
    } else {
        MALLOC_ARENAS
    });
    runtime.block_on(async move {
        let state = tokio::task::spawn_blocking(move || Shared::open(store, config)).await??;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tracing::info!(
            address = %listener.local_addr()?,
            node = %state.config.node_name,
            "listening; /readyz says when the indexes are loaded"
        );
        if let Some(metrics) = metrics {
            let metrics = tokio::net::TcpListener::from_std(metrics)?;
            tracing::info!(address = %metrics.local_addr()?, "serving /metrics");
            let observed = state.clone();
            tokio::spawn(async move {
                if let Err(e) = headcount_server::observe::serve_metrics(observed, metrics).await {
                    tracing::error!(error = %e, "serving /metrics failed");
                }
            });
        }
        let loaded = state.clone();
        tokio::spawn(async move {
            loaded.loading.wait_ready().await;
            release_load_memory();
            // Then now and then: freed memory at the top of the heap and whole free
            // pages inside it go back to the system instead of staying resident.
            let mut every = tokio::time::interval(TRIM_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                let _ = tokio::task::spawn_blocking(release_load_memory).await;
            }
        });
        headcount_server::serve(state, listener).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

/// The machine's host name (`localhost` if it cannot be read).
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer passed.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if ok && !name.is_empty() => name.to_string(),
        _ => "localhost".to_string(),
    }
}

/// Files kept free of connections under the open-file limit: the store, its WAL, the
/// listener, the runtime and logs.
const RESERVED_FILES: u64 = 64;

/// Raises the process's soft limit of open files to its hard limit, so that the
/// connection cap, not a low default (often 1,024), bounds the connections; returns
/// the soft limit now in force (`None` if unknown or unlimited).
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    tracing::info!(
                        from = limit.rlim_cur as u64,
                        to = raised.rlim_cur as u64,
                        "raised the open-file limit"
                    );
                    limit = raised;
                } else {
                    tracing::warn!(
                        soft = limit.rlim_cur as u64,
                        hard = limit.rlim_max as u64,
                        "could not raise the open-file limit"
                    );
                }
            }
        }
        (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}

/// The bound of SQLite's page cache for the server's data directory, in KiB. The
/// server answers from its indexes and its cache of stored sizes, so SQLite's own
/// cache (2,000 KiB by default) would mostly keep the pages its appends wrote, filling
/// for minutes under load; a few interior pages of the tables are what its writes
/// reuse. Measured in docs/performance.md ("Soak").
pub const SERVE_PAGE_CACHE_KIB: u32 = 256;

/// Opens the store of `serve` on a data directory (see [`open`]), its SQLite page
/// cache bounded to [`SERVE_PAGE_CACHE_KIB`].
fn open_serving(dir: &Path) -> Result<super::StoreHandle, Box<dyn std::error::Error>> {
    if crate::database::chosen().is_some() {
        return open(dir);
    }
    Ok(Box::new(serving_sqlite(dir)?))
}

/// The data directory's SQLite store, as `serve` uses it: the writer, its page cache
/// bounded to [`SERVE_PAGE_CACHE_KIB`].
fn serving_sqlite(dir: &Path) -> Result<headcount_store::SqliteStore, headcount_store::StoreError> {
    let store = headcount_store::SqliteStore::open(dir)?;
    store.limit_page_cache(SERVE_PAGE_CACHE_KIB)?;
    Ok(store)
}

/// How many malloc arenas the server's threads share (glibc's default is 8 per core:
/// each thread that meets a locked arena makes another, and every arena keeps the
/// memory freed into it). An operator's `MALLOC_ARENA_MAX` wins. Measured in
/// docs/performance.md ("Soak").
const MALLOC_ARENAS: i32 = 2;

/// [`MALLOC_ARENAS`] for a node of a cluster, whose threads are more (the follower,
/// PostgreSQL's listener, the many blocking threads of a replay) and busier. Measured
/// in docs/performance.md ("data_series on a node").
const NODE_MALLOC_ARENAS: i32 = 4;

/// How often the server returns free heap memory to the system once loaded. Between
/// two trims the memory freed by requests (a recomputation's per-user arrays under the
/// mmap threshold: ~0.8 MiB each at 200k users) stays resident, so longer periods
/// leave the server's level higher and rising (the soak's fitted growth: 4.2% at 30 s,
/// ~2.5% at 10 s, 1.6% at 2 s). A trim walks the free chunks only. Measured in
/// docs/performance.md ("Soak").
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// The size from which glibc's malloc maps a block of its own (and unmaps it when
/// freed) instead of carving it from an arena: a request's per-user state (a 30-day
/// recomputation holds arrays of 4 or 8 bytes per user: about 1-2 MiB each at 200k
/// users) then leaves no freed pages behind in the arena to be trimmed later.
/// Setting it also stops glibc from raising it by itself (up to 32 MiB) after the
/// first such block is freed. Measured in docs/performance.md ("Soak").
const MMAP_THRESHOLD: i32 = 1 << 20;

/// The server's runtime, each of its worker threads on a malloc arena of its own.
///
/// glibc gives a thread its arena at its first allocation, a new one while the cap
/// allows and else one of those that exist, so two workers started under the cap
/// sometimes shared one: every allocation of one then waited on the other's lock, and
/// the server took 1.5x the CPU per request for as long as it ran (docs/performance.md,
/// "data_series on a node"). The workers are started before [`cap_malloc_arenas`] and
/// waited for (a second at most), so that each makes its own.
fn runtime_with_own_arenas() -> std::io::Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let started = Arc::new((std::sync::Mutex::new(0usize), std::sync::Condvar::new()));
    let counted = started.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .on_thread_start(move || {
            // An allocation, so that the thread has its arena now.
            let (count, changed) = &*counted;
            let mut count = count.lock().unwrap_or_else(|p| p.into_inner());
            *count += std::hint::black_box(Box::new(1usize)).as_ref();
            changed.notify_all();
        })
        .build()?;
    let (count, changed) = &*started;
    let count = count.lock().unwrap_or_else(|p| p.into_inner());
    let _ = changed.wait_timeout_while(count, Duration::from_secs(1), |n| *n < workers);
    Ok(runtime)
}

/// Caps the malloc arenas at `arenas` and fixes the mmap threshold at
/// [`MMAP_THRESHOLD`], unless `MALLOC_ARENA_MAX` or `MALLOC_MMAP_THRESHOLD_` is set.
fn cap_malloc_arenas(arenas: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            // SAFETY: mallopt only changes an allocator setting; it takes no pointer.
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, arenas);
            }
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            // SAFETY: as above.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            }
        }
    }
}

/// Hands the memory freed so far (after loading: the columns' growth, decoding
/// buffers; later: what requests freed) back to the system: glibc keeps freed pages
/// otherwise, and they would count against the server's resident size.
fn release_load_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_data_directory_has_a_bounded_page_cache() {
        let dir =
            std::env::temp_dir().join(format!("headcount-serve-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = serving_sqlite(&dir).expect("open");
        assert_eq!(
            store.page_cache_limit_kib().expect("read"),
            i64::from(SERVE_PAGE_CACHE_KIB)
        );
        assert_eq!(SERVE_PAGE_CACHE_KIB, 256);
        drop(store);
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    /// Whether glibc's block at `ptr` (from `malloc`) was mapped on its own: the
    /// IS_MMAPPED bit of the size word before it.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn mapped_on_its_own(ptr: *mut libc::c_void) -> bool {
        // SAFETY: `ptr` is a live block of glibc's malloc, which keeps its size word,
        // with the flag bits, just before it.
        unsafe { *(ptr as *const usize).sub(1) & 2 != 0 }
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn blocks_of_a_mebibyte_stay_mapped_after_a_larger_one_is_freed() {
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
            return;
        }
        cap_malloc_arenas(MALLOC_ARENAS);
        // SAFETY: plain malloc and free of blocks this test owns.
        unsafe {
            // Freeing a mapped block of 8 MiB would raise glibc's own threshold to
            // 8 MiB; the fixed one keeps blocks of 1-2 MiB mapped (and unmapped when
            // freed) instead of left in an arena.
            let big = libc::malloc(8 << 20);
            assert!(mapped_on_its_own(big));
            libc::free(big);
            let block = libc::malloc(2 << 20);
            assert!(mapped_on_its_own(block), "a 2 MiB block came from an arena");
            libc::free(block);
            let small = libc::malloc(64 << 10);
            assert!(!mapped_on_its_own(small), "a 64 KiB block was mapped");
            libc::free(small);
        }
    }
}
