//! Stop signals: a process-wide one the supervisor raises, and a per-worker copy that tasks on
//! that worker wait on without touching anything shared.

use std::cell::Cell;
use std::sync::Arc;

use tokio::sync::{watch, Notify};

/// Raises the graceful stop of a running server; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct StopHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl StopHandle {
    pub(crate) fn new() -> Self {
        StopHandle {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    /// Stops accepting, lets in-flight requests finish (within the shutdown timeout), then
    /// makes [`Server::run`](super::Server::run) return.
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }

    /// True once [`stop`](StopHandle::stop) was called.
    pub fn is_stopped(&self) -> bool {
        *self.tx.borrow()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

/// A worker's view of the stop signal.
#[derive(Debug, Default)]
pub(crate) struct LocalStop {
    stopped: Cell<bool>,
    notify: Notify,
}

impl LocalStop {
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    pub(crate) fn raise(&self) {
        self.stopped.set(true);
        self.notify.notify_waiters();
    }

    /// Completes once the stop was raised.
    pub(crate) async fn wait(&self) {
        while !self.stopped.get() {
            let n = self.notify.notified();
            if self.stopped.get() {
                return;
            }
            n.await;
        }
    }

    /// Forwards the process-wide signal to this worker.
    pub(crate) async fn follow(&self, mut rx: watch::Receiver<bool>) {
        let _ = rx.wait_for(|stopped| *stopped).await;
        self.raise();
    }
}
