//! `headcount serve`: load the data directory and serve the API.

use super::{CmdResult, open};
use crate::args::ServeArgs;
use headcount_server::{Config, Shared};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Runs the server until SIGINT or SIGTERM.
pub fn run(dir: &Path, args: ServeArgs) -> CmdResult {
    let store = open(dir)?;
    let config = Config {
        backfill_days: args.backfill_days,
        max_track_objects: args.max_track_objects,
        ..Config::default()
    };
    let listener = bind(args.listen)?;
    serve(Arc::new(store), config, listener)?;
    Ok(ExitCode::SUCCESS)
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

/// Loads the store into memory and serves it on `listener` (from [`bind`]).
pub fn serve(
    store: Arc<dyn headcount_store::Store>,
    config: Config,
    listener: TcpListener,
) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let state = tokio::task::spawn_blocking(move || Shared::load(store, config)).await??;
        release_load_memory();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tracing::info!(address = %listener.local_addr()?, "serving");
        headcount_server::serve(state, listener).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

/// Hands the memory freed after loading (the columns' growth, decoding buffers) back
/// to the system: glibc keeps freed pages otherwise, and they would count against the
/// server's resident size for its whole life.
fn release_load_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}
