//! Group commit of grant records: what each `authorization_code`, `refresh_token`
//! and `password` grant issued (the refresh-token rotation or insert, and the access
//! token under its grant) is written by one task that puts every request waiting
//! at that moment into one transaction. Each caller still hears only after the
//! commit that holds its record (an issued refresh token survives `kill -9`), but
//! concurrent grants share one fsync instead of queueing for one each.

use std::sync::Arc;

use portcullis_store::{GrantWrite, Store};
use tokio::sync::{mpsc, oneshot};

use crate::ServiceError;

/// Most grants one transaction records.
const BATCH_MAX: usize = 256;
/// Grants waiting before callers wait to enqueue.
const QUEUE: usize = 4_096;

type Ack = oneshot::Sender<Result<bool, String>>;

/// The handle to the writer task.
#[derive(Debug)]
pub(crate) struct GrantWriter {
    tx: mpsc::Sender<(GrantWrite, Ack)>,
}

impl GrantWriter {
    /// Starts the writer over `store`.
    pub(crate) fn start(store: Arc<dyn Store>) -> Self {
        let (tx, mut rx) = mpsc::channel::<(GrantWrite, Ack)>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH_MAX);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                crate::audit::take_waiting(&mut rx, &mut batch, BATCH_MAX);
                let (items, acks): (Vec<GrantWrite>, Vec<Ack>) = batch.drain(..).unzip();
                match store.record_grants(&items).await {
                    Ok(done) => {
                        for (ack, ok) in acks.into_iter().zip(done) {
                            let _ = ack.send(Ok(ok));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, grants = items.len(), "recording grants failed");
                        for ack in acks {
                            let _ = ack.send(Err(e.to_string()));
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Records one grant's writes; `false` when its rotation lost (a reuse).
    pub(crate) async fn write(&self, item: GrantWrite) -> Result<bool, ServiceError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send((item, ack))
            .await
            .map_err(|_| anyhow::anyhow!("the grant writer has stopped"))?;
        match done.await {
            Ok(Ok(ok)) => Ok(ok),
            Ok(Err(e)) => Err(anyhow::anyhow!("recording a grant failed: {e}").into()),
            Err(_) => Err(anyhow::anyhow!("the grant writer dropped a grant").into()),
        }
    }
}
