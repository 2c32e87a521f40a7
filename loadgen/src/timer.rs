//! A timer with microsecond precision for the open loop: a timerfd watched by the reactor.
//!
//! tokio's timer wheel has a 1 ms resolution, so requests due at different instants within one
//! millisecond all went out together at the next tick: the load arrived in bursts, and the
//! server's queueing of each burst showed up as latency. A timerfd fires on the kernel's
//! high-resolution clock instead.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A one-shot timer that can be moved; [`wait`](PreciseTimer::wait) completes at its deadline.
pub struct PreciseTimer {
    fd: AsyncFd<OwnedFd>,
    deadline: Instant,
}

impl PreciseTimer {
    /// A timer set to fire at `deadline`. Must be called inside the runtime.
    pub fn new(deadline: Instant) -> io::Result<Self> {
        // SAFETY: timerfd_create has no memory arguments.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the OwnedFd moves into the AsyncFd and stays open and the same for its life.
        let fd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
            .map_err(io::Error::from)?;
        let mut timer = PreciseTimer { fd, deadline };
        timer.reset(deadline)?;
        Ok(timer)
    }

    /// When it fires.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline (a deadline in the past fires at once).
    pub fn reset(&mut self, deadline: Instant) -> io::Result<()> {
        self.deadline = deadline;
        // A zero it_value disarms a timerfd: a past deadline becomes one nanosecond.
        let after = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: settime on our timerfd with a valid itimerspec; the old value is not asked.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Completes once the deadline has passed.
    pub async fn wait(&self) -> io::Result<()> {
        loop {
            let mut ready = self.fd.readable().await?;
            let read = ready.try_io(|fd| {
                let mut expirations = [0u8; 8];
                // SAFETY: reads 8 bytes into a buffer of 8 bytes.
                let n = unsafe {
                    libc::read(
                        fd.as_raw_fd(),
                        expirations.as_mut_ptr().cast(),
                        expirations.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match read {
                Ok(result) => return result,
                // Re-armed since it became readable: wait on.
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_its_deadline_with_sub_millisecond_precision() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut late = Vec::new();
            for _ in 0..20 {
                let at = Instant::now() + Duration::from_micros(300);
                let timer = PreciseTimer::new(at).unwrap();
                timer.wait().await.unwrap();
                let now = Instant::now();
                assert!(now >= at);
                late.push(now - at);
            }
            late.sort();
            // The median lateness is far under tokio's 1 ms tick (a loaded machine may delay a
            // few of them).
            assert!(late[10] < Duration::from_micros(500), "{late:?}");
        });
    }

    #[test]
    fn moving_the_deadline_earlier_and_into_the_past() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let start = Instant::now();
            let mut timer = PreciseTimer::new(start + Duration::from_secs(3600)).unwrap();
            timer.reset(start - Duration::from_millis(1)).unwrap();
            timer.wait().await.unwrap();
            assert!(start.elapsed() < Duration::from_secs(1));
            assert_eq!(timer.deadline(), start - Duration::from_millis(1));
        });
    }
}
