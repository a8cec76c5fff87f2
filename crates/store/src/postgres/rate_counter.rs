//! Rate-limit windows counted in `rate_counts` from async code: the same statements
//! as [`crate::Store::count_rate_window`], on a connection of its own driven by the
//! caller's tokio runtime, so that a count costs a round trip and no thread hop.

use super::count;
use super::follow::{ADD_TO_WINDOW, DROP_OLDER_WINDOWS, READ_WINDOW};
use crate::{Result, StoreError};
use headcount_model::WorkspaceId;

/// Counts rate-limit windows in a PostgreSQL database (see
/// [`crate::Store::count_rate_window`]), from async code.
pub struct RateCounter {
    config: tokio_postgres::Config,
    client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
}

impl std::fmt::Debug for RateCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateCounter")
    }
}

impl RateCounter {
    /// A counter for the database at `url` (connected on first use, and again after
    /// the connection broke).
    ///
    /// # Errors
    /// The URL is not a PostgreSQL connection string.
    pub fn new(url: &str) -> Result<RateCounter> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Url(e.to_string()))?;
        if config.get_application_name().is_none() {
            config.application_name("headcount rate limits");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        Ok(RateCounter {
            config,
            client: tokio::sync::Mutex::new(None),
        })
    }

    /// Counts `hits` in the window of (`workspace`, `bucket`) starting at
    /// `window_start` (none: reads it) and answers its count after them; must run on
    /// a tokio runtime.
    ///
    /// # Errors
    /// The database failed or cannot be reached ([`StoreError::Unavailable`]).
    pub async fn count(
        &self,
        workspace: WorkspaceId,
        bucket: &str,
        window_start: u64,
        hits: u64,
    ) -> Result<u64> {
        let mut held = self.client.lock().await;
        if held.as_ref().is_none_or(|c| c.is_closed()) {
            let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                // Ends when the client is dropped or the connection breaks; the next
                // count then connects again.
                let _ = connection.await;
            });
            *held = Some(client);
        }
        let Some(client) = held.as_ref() else {
            return Err(StoreError::Unavailable("no connection".into()));
        };
        let start = count(window_start);
        let answer = if hits == 0 {
            client
                .query_opt(READ_WINDOW, &[&workspace.0, &bucket, &start])
                .await
                .map(|row| row.map_or(0, |r| r.get::<_, i64>(0)))
        } else {
            let added = count(hits);
            match client
                .query_one(ADD_TO_WINDOW, &[&workspace.0, &bucket, &start, &added])
                .await
            {
                Ok(row) => {
                    let counted: i64 = row.get(0);
                    if counted == added {
                        client
                            .execute(DROP_OLDER_WINDOWS, &[&workspace.0, &bucket, &start])
                            .await?;
                    }
                    Ok(counted)
                }
                Err(e) => Err(e),
            }
        };
        match answer {
            Ok(counted) => Ok(counted.max(0) as u64),
            Err(e) => {
                if e.is_closed() {
                    *held = None;
                }
                Err(e.into())
            }
        }
    }
}
