//! `headcount serve`: load the data directory and serve the API.

use super::{CmdResult, open};
use crate::args::ServeArgs;
use headcount_server::checkpoints;
use headcount_server::{Config, Shared};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Runs the server until SIGINT or SIGTERM.
pub fn run(dir: &Path, args: ServeArgs) -> CmdResult {
    let store = open(dir)?;
    let config = Config {
        backfill_days: args.backfill_days,
        max_track_objects: args.max_track_objects,
        checkpoints: Some(checkpoints::dir_of(dir)),
        ..Config::default()
    };
    serve(Arc::new(store), config, args.listen)?;
    Ok(ExitCode::SUCCESS)
}

/// Listens on `listen` at once and serves the store, its indexes loading in the
/// background (the API answers 503 until they are ready).
pub fn serve(
    store: Arc<dyn headcount_store::Store>,
    config: Config,
    listen: std::net::SocketAddr,
) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let state = tokio::task::spawn_blocking(move || Shared::open(store, config)).await??;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        tracing::info!(address = %listener.local_addr()?, "listening; /readyz says when the indexes are loaded");
        let loaded = state.clone();
        tokio::spawn(async move {
            loaded.loading.wait_ready().await;
            release_load_memory();
        });
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
