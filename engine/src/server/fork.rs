//! The one place the server forks (`--daemonize` and the prefork supervisor), with hooks for a
//! host that has state to carry across a fork.
//!
//! The `ringfast` binary sets none: its supervisor holds no interpreter (each worker process
//! starts Python after the fork). The Python extension (`python/`, `pip install .`) runs inside
//! an interpreter that already exists, so it registers hooks that take the GIL and call
//! `PyOS_BeforeFork` before the fork, and `PyOS_AfterFork_Parent` or `PyOS_AfterFork_Child`
//! after it, as `os.fork()` does.

use std::sync::OnceLock;

/// What to run around each fork, on the forking thread.
#[derive(Debug, Clone, Copy)]
pub struct ForkHooks {
    /// Before `fork()`.
    pub before: fn(),
    /// After `fork()` in the parent (also when the fork failed).
    pub parent: fn(),
    /// After `fork()` in the child, first thing.
    pub child: fn(),
}

static HOOKS: OnceLock<ForkHooks> = OnceLock::new();

/// Registers the hooks for every later fork of the server. Only the first call counts; returns
/// whether it was this one.
pub fn set_hooks(hooks: ForkHooks) -> bool {
    HOOKS.set(hooks).is_ok()
}

/// `fork()` with the hooks around it.
///
/// # Safety
///
/// As `libc::fork`: the caller makes sure the child starts in a consistent state (no other
/// thread holding a lock the child will need).
pub(crate) unsafe fn fork() -> libc::pid_t {
    let hooks = HOOKS.get();
    if let Some(h) = hooks {
        (h.before)();
    }
    // SAFETY: the caller's contract.
    let pid = unsafe { libc::fork() };
    if let Some(h) = hooks {
        if pid == 0 {
            (h.child)();
        } else {
            (h.parent)();
        }
    }
    pid
}
