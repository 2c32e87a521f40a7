//! The Python thread pool: `--threads` OS threads, each attached to the interpreter for its
//! whole life and detached (GIL released) while it waits for work. I/O threads only queue jobs
//! and never touch Python.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

/// A unit of work for a Python thread.
pub(crate) type Job = Box<dyn for<'py> FnOnce(Python<'py>) + Send>;

/// The pool was shut down (every thread exited).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the Python thread pool is gone")]
pub(crate) struct PoolGone;

/// The sending side of the job queue; cheap to share between workers.
#[derive(Debug)]
pub(crate) struct Pool {
    tx: Mutex<mpsc::Sender<Job>>,
}

impl Pool {
    /// Starts `threads` Python threads.
    pub(crate) fn start(threads: usize) -> std::io::Result<Arc<Pool>> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("ringfast-py{i}"))
                .spawn(move || Python::attach(|py| serve(py, &rx)))?;
        }
        Ok(Arc::new(Pool { tx: Mutex::new(tx) }))
    }

    /// Queues a job; it runs when a Python thread is free.
    pub(crate) fn submit(&self, job: Job) -> Result<(), PoolGone> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        tx.send(job).map_err(|_| PoolGone)
    }
}

/// One Python thread: waits for jobs with the GIL released, runs each with it held. A panic in a
/// job fails that job only.
fn serve(py: Python<'_>, rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = py.detach(|| {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        });
        let Ok(job) = job else { return };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(py)));
        if outcome.is_err() {
            tracing::error!(target: "wsgi", "a Python job panicked; its request failed");
        }
    }
}
