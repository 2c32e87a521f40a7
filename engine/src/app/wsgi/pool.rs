//! The Python thread pool: `--threads` OS threads, each attached to the interpreter for its
//! whole life. I/O threads only queue requests and never touch Python.
//!
//! The queue wakes at most one idle thread per request, and none when every thread is busy: a
//! thread that finishes a request takes the next queued one itself, still holding the GIL, so
//! under load one GIL acquisition serves a whole batch. A thread releases the GIL only when it
//! waits: for work (the queue is empty), for the request body, or for the connection to take
//! more output. A request is only ever taken by a thread that runs it at once, so a slow view
//! holds up nothing queued while another thread is free.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use pyo3::prelude::*;

use super::call::{self, App};
use super::link::Link;

/// The pool was shut down (every thread exited).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the Python thread pool is gone")]
pub(crate) struct PoolGone;

#[derive(Debug, Default)]
struct QueueState {
    jobs: VecDeque<Arc<Link>>,
    /// Threads asleep on the condition variable.
    idle: usize,
    /// Wake-ups sent and not yet taken by a thread.
    signaled: usize,
    stopped: bool,
}

#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
    work: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, link: Arc<Link>) -> Result<(), PoolGone> {
        let mut st = self.lock();
        if st.stopped {
            return Err(PoolGone);
        }
        st.jobs.push_back(link);
        // Wake one sleeper unless enough wake-ups are already on their way.
        if st.idle > st.signaled {
            st.signaled += 1;
            drop(st);
            self.work.notify_one();
        }
        Ok(())
    }

    /// The next request without waiting (a busy thread draining the queue).
    fn try_pop(&self) -> Option<Arc<Link>> {
        self.lock().jobs.pop_front()
    }

    /// Waits for the next request; `None` once the pool stopped. Blocks: call it with the GIL
    /// released.
    fn pop_wait(&self) -> Option<Arc<Link>> {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                return Some(job);
            }
            if st.stopped {
                return None;
            }
            st.idle += 1;
            st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
            st.idle -= 1;
            st.signaled = st.signaled.saturating_sub(1);
        }
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.work.notify_all();
    }
}

/// The sending side of the queue; cheap to share between workers. Dropping it stops the
/// threads once the queue is empty.
#[derive(Debug)]
pub(crate) struct Pool {
    queue: Arc<Queue>,
}

impl Pool {
    /// Starts `threads` Python threads serving `app`.
    pub(crate) fn start(threads: usize, app: Arc<App>) -> std::io::Result<Arc<Pool>> {
        let queue = Arc::new(Queue::default());
        for i in 0..threads.max(1) {
            let (queue, app) = (queue.clone(), app.clone());
            std::thread::Builder::new()
                .name(format!("ringfast-py{i}"))
                .spawn(move || Python::attach(|py| serve(py, &queue, &app)))?;
        }
        Ok(Arc::new(Pool { queue }))
    }

    /// Queues a request; it runs when a Python thread is free.
    pub(crate) fn submit(&self, link: Arc<Link>) -> Result<(), PoolGone> {
        self.queue.push(link)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.queue.stop();
    }
}

/// One Python thread: waits for requests with the GIL released, then runs them with it held,
/// taking the next queued request without releasing it. A panic fails that request only.
fn serve(py: Python<'_>, queue: &Queue, app: &App) {
    while let Some(mut link) = py.detach(|| queue.pop_wait()) {
        loop {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                call::run(py, app, &link)
            }));
            if outcome.is_err() {
                tracing::error!(target: "wsgi", "a Python job panicked; its request failed");
                link.fail();
            }
            match queue.try_pop() {
                Some(next) => link = next,
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::wsgi::environ::Vars;

    #[test]
    fn one_wake_per_request_and_none_when_busy() {
        let q = Queue::default();
        q.push(Arc::new(Link::new(Vars::default()))).unwrap();
        assert_eq!(q.lock().signaled, 0, "nobody idle: nobody woken");
        assert!(q.try_pop().is_some());
        q.lock().idle = 2;
        q.push(Arc::new(Link::new(Vars::default()))).unwrap();
        q.push(Arc::new(Link::new(Vars::default()))).unwrap();
        q.push(Arc::new(Link::new(Vars::default()))).unwrap();
        assert_eq!(q.lock().signaled, 2, "at most one wake per idle thread");
        q.lock().idle = 0;
        q.stop();
        assert!(q.push(Arc::new(Link::new(Vars::default()))).is_err());
        // Queued work is still served after a stop.
        assert!(q.pop_wait().is_some());
    }

    #[test]
    fn waiting_threads_take_queued_requests_then_stop() {
        let q = Arc::new(Queue::default());
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut n = 0;
                    while q.pop_wait().is_some() {
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        for _ in 0..10 {
            q.push(Arc::new(Link::new(Vars::default()))).unwrap();
        }
        while !q.lock().jobs.is_empty() {
            std::thread::yield_now();
        }
        q.stop();
        let total: usize = takers.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 10);
    }
}
