//! The native io_uring layer a per-core event loop sits on: one [`Ring`][ring] per worker
//! thread, its operations (the `ops` submodule: methods on [`Ring`][ring]), provided buffer rings
//! ([`BufRing`][bufring]) and completions ([`Completion`][completion]).
//!
//! Nothing here is async: the loop pushes operations, each tagged with a caller-chosen
//! `user_data: u64`, calls [`Ring::submit_and_wait`][wait] once per turn (one `io_uring_enter`),
//! then drains the completions with [`Ring::drain_completions`][drain]. No operation allocates.
//!
//! # Setup flags
//!
//! [`Ring::new`][new] asks for `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG | SUBMIT_ALL` and,
//! when the kernel refuses a combination with `EINVAL`, retries with fewer flags (see
//! [`SetupFlags::FALLBACKS`][fallbacks]); [`Ring::flags_taken`][taken] says what the kernel
//! accepted (all four on Linux 6.18). With `SINGLE_ISSUER` the ring belongs to the thread that
//! created it, so [`Ring`][ring] and [`BufRing`][bufring] are neither `Send` nor `Sync`. With
//! `DEFER_TASKRUN` completions are only produced inside `io_uring_enter(GETEVENTS)`, which is why
//! every [`Ring::submit_and_wait`][wait] passes GETEVENTS, even when it does not wait.
//!
//! # Semantics verified on kernel 6.18 (see `tests.rs`)
//!
//! - A multishot accept yields one CQE per connection with `F_MORE`; after
//!   [`Ring::cancel`][cancel] it ends with `-ECANCELED` (no `F_MORE`) and later connections stay
//!   in the listen backlog, where a plain `accept(2)` (another process, say) still finds them.
//! - A multishot receive ends without `F_MORE` at end of stream (result 0), on error, when
//!   cancelled (`-ECANCELED`) and when its buffer group is empty (`-ENOBUFS`, even when the
//!   next thing to report is the end of stream). It must then be re-armed to receive again;
//!   data left in the socket is not lost.
//! - `cancel` by `user_data` finds nothing: `-ENOENT`; `cancel_fd` (CANCEL_ALL) reports a count,
//!   0 when nothing was pending.
//! - Linked send → shutdown → close: see [`Ring::send_shutdown_close`][link].
//!
//! [ring]: crate::io::ring::Ring
//! [bufring]: crate::io::ring::BufRing
//! [completion]: crate::io::ring::Completion
//! [wait]: crate::io::ring::Ring::submit_and_wait
//! [drain]: crate::io::ring::Ring::drain_completions
//! [new]: crate::io::ring::Ring::new
//! [fallbacks]: crate::io::ring::SetupFlags::FALLBACKS
//! [taken]: crate::io::ring::Ring::flags_taken
//! [cancel]: crate::io::ring::Ring::cancel
//! [link]: crate::io::ring::Ring::send_shutdown_close

mod bufring;
mod ops;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::io;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::Duration;

use io_uring::{cqueue, squeue, types, EnterFlags, IoUring};

pub use super::loop_io::{BufError, Completion, LinkMode, LinkedIds, Wait};
pub use bufring::BufRing;

/// A set of `io_uring_setup(2)` flags, with the kernel's bit values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetupFlags(u32);

impl SetupFlags {
    /// No flag.
    pub const NONE: SetupFlags = SetupFlags(0);
    /// `IORING_SETUP_SUBMIT_ALL` (5.18): keep submitting a batch past an SQE that fails early.
    pub const SUBMIT_ALL: SetupFlags = SetupFlags(1 << 7);
    /// `IORING_SETUP_COOP_TASKRUN` (5.19): no inter-processor interrupt to run task work.
    pub const COOP_TASKRUN: SetupFlags = SetupFlags(1 << 8);
    /// `IORING_SETUP_TASKRUN_FLAG` (5.19): the kernel sets `IORING_SQ_TASKRUN` when completions
    /// wait for an `io_uring_enter` (see [`Ring::taskrun_pending`]).
    pub const TASKRUN_FLAG: SetupFlags = SetupFlags(1 << 9);
    /// `IORING_SETUP_SINGLE_ISSUER` (6.0): only the creating thread submits.
    pub const SINGLE_ISSUER: SetupFlags = SetupFlags(1 << 12);
    /// `IORING_SETUP_DEFER_TASKRUN` (6.1): completion work runs only inside
    /// `io_uring_enter(GETEVENTS)`. Requires `SINGLE_ISSUER`.
    pub const DEFER_TASKRUN: SetupFlags = SetupFlags(1 << 13);

    /// The combinations [`Ring::new`] tries, best first. Each one drops what an older kernel
    /// refuses: DEFER_TASKRUN (6.1), SINGLE_ISSUER (6.0), the taskrun flags (5.19), SUBMIT_ALL
    /// (5.18).
    pub const FALLBACKS: [SetupFlags; 6] = [
        SetupFlags(
            Self::SINGLE_ISSUER.0
                | Self::DEFER_TASKRUN.0
                | Self::TASKRUN_FLAG.0
                | Self::SUBMIT_ALL.0,
        ),
        SetupFlags(Self::SINGLE_ISSUER.0 | Self::DEFER_TASKRUN.0 | Self::SUBMIT_ALL.0),
        SetupFlags(
            Self::SINGLE_ISSUER.0
                | Self::COOP_TASKRUN.0
                | Self::TASKRUN_FLAG.0
                | Self::SUBMIT_ALL.0,
        ),
        SetupFlags(Self::COOP_TASKRUN.0 | Self::TASKRUN_FLAG.0 | Self::SUBMIT_ALL.0),
        Self::SUBMIT_ALL,
        Self::NONE,
    ];

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is in `self`.
    pub const fn contains(self, other: SetupFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of both sets.
    pub const fn union(self, other: SetupFlags) -> SetupFlags {
        SetupFlags(self.0 | other.0)
    }

    /// The names of the flags in the set, for logs.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        const NAMED: [(SetupFlags, &str); 5] = [
            (SetupFlags::SINGLE_ISSUER, "SINGLE_ISSUER"),
            (SetupFlags::DEFER_TASKRUN, "DEFER_TASKRUN"),
            (SetupFlags::COOP_TASKRUN, "COOP_TASKRUN"),
            (SetupFlags::TASKRUN_FLAG, "TASKRUN_FLAG"),
            (SetupFlags::SUBMIT_ALL, "SUBMIT_ALL"),
        ];
        NAMED
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }

    fn apply(self, b: &mut io_uring::Builder) {
        if self.contains(Self::SUBMIT_ALL) {
            b.setup_submit_all();
        }
        if self.contains(Self::COOP_TASKRUN) {
            b.setup_coop_taskrun();
        }
        if self.contains(Self::TASKRUN_FLAG) {
            b.setup_taskrun_flag();
        }
        if self.contains(Self::SINGLE_ISSUER) {
            b.setup_single_issuer();
        }
        if self.contains(Self::DEFER_TASKRUN) {
            b.setup_defer_taskrun();
        }
    }
}

impl From<&cqueue::Entry> for Completion {
    fn from(e: &cqueue::Entry) -> Self {
        Completion {
            user_data: e.user_data(),
            result: e.result(),
            flags: e.flags(),
        }
    }
}

/// What a [`Ring`] and its [`BufRing`]s share: the io_uring and the memory of buffer rings that
/// were dropped, which stays mapped until the io_uring itself is closed.
struct Shared {
    // Declared first: dropped (closed) before the mappings below are unmapped.
    uring: IoUring,
    retired: RefCell<Vec<bufring::Mapping>>,
}

/// One io_uring, owned by one thread (see the module documentation for the setup flags).
///
/// Operations are pushed with the methods in [`ops`]; when the submission queue is full, a push
/// submits what is queued and retries, so no entry is ever dropped.
pub struct Ring {
    shared: Rc<Shared>,
    flags: SetupFlags,
    /// Neither `Send` nor `Sync` (also implied by `Rc`): a SINGLE_ISSUER ring must stay on the
    /// thread that created it.
    _thread: PhantomData<*const ()>,
}

impl Ring {
    /// Sets up a ring with `entries` submission entries (the completion queue gets twice as
    /// many), trying [`SetupFlags::FALLBACKS`] in turn.
    pub fn new(entries: u32) -> io::Result<Ring> {
        Ring::with_fallbacks(entries, &SetupFlags::FALLBACKS)
    }

    /// Sets up a ring with the first combination of `candidates` the kernel accepts. Only
    /// `EINVAL` moves on to the next; any other error (`ENOMEM`, `EPERM` when io_uring is
    /// disabled, `ENOSYS`) is returned at once, as is the last `EINVAL`.
    pub fn with_fallbacks(entries: u32, candidates: &[SetupFlags]) -> io::Result<Ring> {
        let mut last = io::Error::from_raw_os_error(libc::EINVAL);
        for &flags in candidates {
            let mut builder = IoUring::builder();
            flags.apply(&mut builder);
            match builder.build(entries) {
                Ok(uring) => {
                    return Ok(Ring {
                        shared: Rc::new(Shared {
                            uring,
                            retired: RefCell::new(Vec::new()),
                        }),
                        flags,
                        _thread: PhantomData,
                    })
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// The setup flags the kernel accepted.
    pub fn flags_taken(&self) -> SetupFlags {
        self.flags
    }

    /// The kernel's parameters (features, queue sizes).
    pub fn params(&self) -> &io_uring::Parameters {
        self.shared.uring.params()
    }

    /// Whether the kernel can skip success completions (`IOSQE_CQE_SKIP_SUCCESS`, 5.17).
    pub fn supports_skip_success(&self) -> bool {
        self.params().is_feature_skip_cqe_on_success()
    }

    /// With [`SetupFlags::TASKRUN_FLAG`]: whether completions are pending that only an
    /// `io_uring_enter` will deliver. Always `false` without the flag.
    pub fn taskrun_pending(&self) -> bool {
        // SAFETY: `&self` on a !Sync Ring; no other queue view is alive (every method drops its
        // own before returning), and this one only reads the flags word.
        let sq = unsafe { self.shared.uring.submission_shared() };
        sq.taskrun()
    }

    /// Pushes one entry, submitting first if the queue is full.
    ///
    /// # Safety
    ///
    /// Every pointer in `entry` must stay valid until the operation's last completion.
    pub(crate) unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        // SAFETY: the caller's contract covers the entry's pointers.
        unsafe { self.push_all(std::slice::from_ref(entry)) }
    }

    /// Pushes `entries` into one submission batch (a link chain must not be split across two
    /// `io_uring_enter` calls), submitting what is queued first if they do not fit.
    ///
    /// # Safety
    ///
    /// Every pointer in the entries must stay valid until their operations' last completions.
    pub(crate) unsafe fn push_all(&mut self, entries: &[squeue::Entry]) -> io::Result<()> {
        loop {
            {
                // SAFETY: `&mut self` on a !Send, !Sync Ring: no other submission-queue view
                // exists while this one lives; it is dropped (publishing the tail) at the end of
                // this block.
                let mut sq = unsafe { self.shared.uring.submission_shared() };
                if entries.len() > sq.capacity() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "more linked entries than the submission queue holds",
                    ));
                }
                // SAFETY: the caller guarantees the entries' pointers; push_multiple checks room.
                if unsafe { sq.push_multiple(entries) }.is_ok() {
                    return Ok(());
                }
            }
            self.submit()?;
        }
    }

    /// Submits queued entries without waiting; retries on `EINTR`.
    pub fn submit(&mut self) -> io::Result<usize> {
        loop {
            match self.shared.uring.submit() {
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                r => return r,
            }
        }
    }

    /// Submits everything queued and waits until `want` completions are ready or `timeout`
    /// passes: one `io_uring_enter` per call, always with GETEVENTS (so deferred completion work
    /// runs even when `want` is 0). A timeout goes in the enter call itself (`EXT_ARG`), so no
    /// timeout SQE is needed; kernels without `EXT_ARG` (before 5.11) get `Unsupported`.
    ///
    /// `ETIME`, `EINTR` and `EBUSY` are outcomes ([`Wait`]), not errors.
    pub fn submit_and_wait(&mut self, want: usize, timeout: Option<Duration>) -> io::Result<Wait> {
        // SAFETY: as in `push_all`; the view is only read for its length and dropped at once.
        let to_submit = unsafe { self.shared.uring.submission_shared() }.len() as u32;
        let want = u32::try_from(want).unwrap_or(u32::MAX);
        let submitter = self.shared.uring.submitter();
        let result = match timeout {
            Some(t) if want > 0 => {
                if !self.params().is_feature_ext_arg() {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "io_uring_enter EXT_ARG (timeout) needs Linux 5.11",
                    ));
                }
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                let flags = EnterFlags::GETEVENTS | EnterFlags::EXT_ARG;
                // SAFETY: `args` is an io_uring_getevents_arg (repr(transparent)) that, with the
                // timespec it points to, outlives the call; EXT_ARG tells the kernel its type.
                unsafe { submitter.enter(to_submit, want, flags.bits(), Some(&args)) }
            }
            _ => {
                // SAFETY: no argument is passed (null, size of sigset_t ignored without
                // EXT_ARG); the flags are valid for this ring.
                unsafe {
                    submitter.enter::<libc::sigset_t>(
                        to_submit,
                        want,
                        EnterFlags::GETEVENTS.bits(),
                        None,
                    )
                }
            }
        };
        match result {
            Ok(_) => Ok(Wait::Ready),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) => Ok(Wait::TimedOut),
                Some(libc::EINTR) => Ok(Wait::Interrupted),
                Some(libc::EBUSY) | Some(libc::EAGAIN) => Ok(Wait::Busy),
                _ => Err(e),
            },
        }
    }

    /// Moves every ready completion to the end of `out` and returns how many. `out` keeps its
    /// capacity between turns, so a loop that reuses it does not allocate.
    pub fn drain_completions(&mut self, out: &mut Vec<Completion>) -> usize {
        // SAFETY: `&mut self` on a !Send, !Sync Ring: this is the only completion-queue view;
        // dropping it at the end of the function publishes the new head.
        let cq = unsafe { self.shared.uring.completion_shared() };
        let before = out.len();
        out.extend(cq.map(|e| Completion::from(&e)));
        out.len() - before
    }

    /// The number of queued entries not yet submitted.
    pub fn pending_submissions(&mut self) -> usize {
        // SAFETY: as in `push_all`; dropped at once.
        unsafe { self.shared.uring.submission_shared() }.len()
    }

    fn shared(&self) -> &Rc<Shared> {
        &self.shared
    }
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("flags", &self.flags.names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
