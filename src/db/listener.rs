//! LISTEN/NOTIFY for `Connection.add_listener`: a dedicated listening
//! session (asyncpg listens on the connection itself; sqlx's listener needs
//! its own) driven by one tokio task. Notifications are queued in Rust and
//! pulled by a Python dispatcher task, so no tokio thread takes the GIL.

use std::sync::Arc;

use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex};

use super::postgres::map_err;
use crate::errors::{Error, Result};

enum Command {
    Listen(String, oneshot::Sender<Result<()>>),
    Unlisten(String, oneshot::Sender<Result<()>>),
}

/// One notification: (sender's backend pid, channel, payload).
pub(crate) type Notification = (u32, String, String);

pub(crate) struct Listener {
    commands: mpsc::UnboundedSender<Command>,
    pub(crate) notifications: Arc<AsyncMutex<mpsc::UnboundedReceiver<Notification>>>,
}

impl Listener {
    pub(crate) async fn start(opts: &sqlx::postgres::PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(opts.clone());
        let mut listener = PgListener::connect_with(&pool)
            .await
            .map_err(|e| map_err(e, None))?;
        let (commands, mut rx) = mpsc::unbounded_channel::<Command>();
        let (out, notifications) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    cmd = rx.recv() => match cmd {
                        // The Connection is gone: stop listening.
                        None => break,
                        Some(Command::Listen(ch, done)) => {
                            let _ = done.send(listener.listen(&ch).await.map_err(|e| map_err(e, None)));
                        }
                        Some(Command::Unlisten(ch, done)) => {
                            let _ = done.send(listener.unlisten(&ch).await.map_err(|e| map_err(e, None)));
                        }
                    },
                    n = listener.recv() => match n {
                        Ok(n) => {
                            let item = (n.process_id(), n.channel().to_owned(), n.payload().to_owned());
                            if out.send(item).is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            log::warn!("LISTEN session failed: {e}");
                            break;
                        }
                    },
                }
            }
            // The listener holds the pool's only connection: drop it (and
            // end the queue) before closing the pool, which waits for it.
            drop(listener);
            drop(out);
            pool.close().await;
        });
        Ok(Listener {
            commands,
            notifications: Arc::new(AsyncMutex::new(notifications)),
        })
    }

    async fn command(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<()>>) -> Command,
    ) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| Error::Interface("the listening session is closed".into()))?;
        rx.await
            .map_err(|_| Error::Interface("the listening session is closed".into()))?
    }

    pub(crate) async fn listen(&self, channel: String) -> Result<()> {
        self.command(|tx| Command::Listen(channel, tx)).await
    }

    pub(crate) async fn unlisten(&self, channel: String) -> Result<()> {
        self.command(|tx| Command::Unlisten(channel, tx)).await
    }
}
