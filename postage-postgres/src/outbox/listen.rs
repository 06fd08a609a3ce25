//! Wakes a relay when a transaction that wrote to its outbox commits:
//! `LISTEN postage_outbox` on a connection of its own, made again when
//! it is lost.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::poll_fn;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::Database;
use crate::database::{STATEMENT_LIMIT, limited};

/// The channel the outbox's trigger notifies (payload: the schema).
pub(super) const CHANNEL: &str = "postage_outbox";

/// Listens until the task is aborted, notifying `wake` for every
/// notification about `schema`'s outbox, and once after every
/// (re)connection, since notifications sent meanwhile were lost.
pub(super) async fn listen(database: Database, schema: String, wake: Arc<Notify>) {
    let mut pause = Duration::from_millis(100);
    loop {
        match database.config().connect(NoTls).await {
            Ok((client, mut connection)) => {
                let driver = async {
                    loop {
                        match poll_fn(|cx| connection.poll_message(cx)).await {
                            Some(Ok(AsyncMessage::Notification(note))) => {
                                if note.payload() == schema {
                                    wake.notify_one();
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(error)) => break error.to_string(),
                            None => break "closed".to_owned(),
                        }
                    }
                };
                let subscribe = async {
                    let listen = format!("LISTEN {CHANNEL}");
                    match limited("LISTEN", STATEMENT_LIMIT, client.batch_execute(&listen)).await {
                        Ok(()) => {
                            tracing::debug!(schema, "outbox relay listening");
                            wake.notify_one();
                            std::future::pending::<()>().await;
                        }
                        Err(error) => tracing::warn!(%error, "outbox relay could not LISTEN"),
                    }
                };
                tokio::select! {
                    reason = driver => {
                        tracing::warn!(reason, "outbox relay's listening connection lost; polling meanwhile");
                    }
                    () = subscribe => {}
                }
                pause = Duration::from_millis(100);
            }
            Err(error) => {
                tracing::debug!(%error, "outbox relay cannot listen yet");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
