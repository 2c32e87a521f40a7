//! `--user`, `--group` and `--socket-owner`: bind as root, then run the application as
//! someone else.
//!
//! The names are looked up before anything is bound, so a typo stops the start with a clear
//! error. The listeners are bound (and the Unix socket files created and given to
//! `--socket-owner`) as the user ringfast starts as. Then the process that will load the
//! application, the server itself or each worker process a supervisor forks, switches: no
//! supplementary groups, then the group, then the user (in that order: once the user is not root
//! the groups cannot change). That happens before the application is loaded and before a
//! request is read. The supervisor stays root, as PHP-FPM's master does: it runs no
//! application code, and it removes the socket files and the pidfile at the end.
//!
//! Changing credentials clears the parent-death signal, so a worker process arms it again.

use std::ffi::CString;
use std::io;

/// A user and group to run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The user, as given (for the log).
    pub(crate) name: String,
    pub(crate) uid: libc::uid_t,
    pub(crate) gid: libc::gid_t,
}

/// Why a user or a group cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivilegeError {
    /// No user by that name or number.
    #[error("--{option} {name:?}: no such user")]
    UnknownUser {
        /// The option that named it.
        option: &'static str,
        /// The name given.
        name: String,
    },
    /// No group by that name or number.
    #[error("--{option} {name:?}: no such group")]
    UnknownGroup {
        /// The option that named it.
        option: &'static str,
        /// The name given.
        name: String,
    },
    /// A user id with no entry in the user database, so no primary group to take.
    #[error("--user {uid}: no user has this id, so it has no primary group: give --group too")]
    NoPrimaryGroup {
        /// The user id.
        uid: libc::uid_t,
    },
    /// `--group` without `--user`.
    #[error("--group needs --user (the group is switched to together with the user)")]
    GroupWithoutUser,
    /// The user database could not be read.
    #[error("cannot look up {what}: {source}")]
    Lookup {
        /// What was looked up.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// The switch itself failed (not root, most often).
    #[error("cannot switch to user {user} (uid {uid}, gid {gid}): {what}: {source}{hint}")]
    Switch {
        /// The user as given.
        user: String,
        /// Its uid.
        uid: libc::uid_t,
        /// The gid.
        gid: libc::gid_t,
        /// The call that failed.
        what: &'static str,
        /// The OS error.
        source: io::Error,
        /// A hint when not running as root.
        hint: &'static str,
    },
}

/// The process's effective user id.
pub(crate) fn euid() -> libc::uid_t {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// The user `--user` names, with `--group` (or the user's primary group).
pub(crate) fn resolve(
    user: Option<&str>,
    group: Option<&str>,
) -> Result<Option<Identity>, PrivilegeError> {
    let Some(user) = user else {
        return match group {
            Some(_) => Err(PrivilegeError::GroupWithoutUser),
            None => Ok(None),
        };
    };
    let (uid, primary) = lookup_user("user", user)?;
    let gid = match group {
        Some(g) => lookup_group("group", g)?,
        None => primary.ok_or(PrivilegeError::NoPrimaryGroup { uid })?,
    };
    Ok(Some(Identity {
        name: user.to_string(),
        uid,
        gid,
    }))
}

/// `--socket-owner USER[:GROUP]`: the user's primary group when no group is given.
pub(crate) fn resolve_owner(spec: &str) -> Result<(libc::uid_t, libc::gid_t), PrivilegeError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, primary) = lookup_user("socket-owner", user)?;
    let gid = match group {
        Some(g) => lookup_group("socket-owner", g)?,
        None => primary.ok_or(PrivilegeError::NoPrimaryGroup { uid })?,
    };
    Ok((uid, gid))
}

/// Switches the process to `id`: no supplementary groups, the group, the user. In a worker
/// process (`worker_process`), re-arms the parent-death signal the switch cleared.
pub(crate) fn switch_to(id: &Identity, worker_process: bool) -> Result<(), PrivilegeError> {
    let fail = |what: &'static str| {
        let source = io::Error::last_os_error();
        PrivilegeError::Switch {
            user: id.name.clone(),
            uid: id.uid,
            gid: id.gid,
            what,
            source,
            hint: if euid() == 0 {
                ""
            } else {
                " (switching users needs ringfast to start as root)"
            },
        }
    };
    // SAFETY: getppid, getuid and getgid have no preconditions.
    let (parent, uid, gid) = unsafe { (libc::getppid(), libc::getuid(), libc::getgid()) };
    if uid == id.uid && euid() == id.uid && gid == id.gid && id.uid != 0 {
        // Already that user (started by systemd's User=, say): nothing to give up.
        return Ok(());
    }
    // SAFETY: setgroups with an empty list; setgid and setuid with plain ids. In a process
    // with threads, glibc applies them to every thread.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(fail("setgroups"));
        }
        if libc::setgid(id.gid) != 0 {
            return Err(fail("setgid"));
        }
        if libc::setuid(id.uid) != 0 {
            return Err(fail("setuid"));
        }
    }
    // What was given up cannot be taken back.
    // SAFETY: setuid(0) only tests whether root can be regained; it must fail.
    if id.uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(PrivilegeError::Switch {
            user: id.name.clone(),
            uid: id.uid,
            gid: id.gid,
            what: "root could be regained after setuid",
            source: io::Error::from(io::ErrorKind::PermissionDenied),
            hint: "",
        });
    }
    if worker_process {
        // SAFETY: prctl with a signal number; getppid has no preconditions.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            // The supervisor died while the signal was off: do not run as an orphan.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
        }
    }
    tracing::info!(
        user = %id.name,
        uid = id.uid,
        gid = id.gid,
        "running as this user (supplementary groups cleared)"
    );
    Ok(())
}

/// All digits: an id rather than a name.
fn numeric(s: &str) -> Option<u32> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// A user's uid and primary gid (none for an id without an entry).
fn lookup_user(
    option: &'static str,
    name: &str,
) -> Result<(libc::uid_t, Option<libc::gid_t>), PrivilegeError> {
    let unknown = || PrivilegeError::UnknownUser {
        option,
        name: name.to_string(),
    };
    let lookup_error = |source| PrivilegeError::Lookup {
        what: format!("user {name:?}"),
        source,
    };
    if let Some(uid) = numeric(name) {
        let found = with_buffer(|pw, buf, len, out| {
            // SAFETY: getpwuid_r writes into the passwd, buffer and result we own.
            unsafe { libc::getpwuid_r(uid, pw, buf, len, out) }
        })
        .map_err(lookup_error)?;
        return Ok((uid, found.map(|pw: libc::passwd| pw.pw_gid)));
    }
    let cname = CString::new(name).map_err(|_| unknown())?;
    let found = with_buffer(|pw, buf, len, out| {
        // SAFETY: getpwnam_r reads the name and writes into what we own.
        unsafe { libc::getpwnam_r(cname.as_ptr(), pw, buf, len, out) }
    })
    .map_err(lookup_error)?;
    let pw: libc::passwd = found.ok_or_else(unknown)?;
    Ok((pw.pw_uid, Some(pw.pw_gid)))
}

/// A group's gid (an id is taken as it is).
fn lookup_group(option: &'static str, name: &str) -> Result<libc::gid_t, PrivilegeError> {
    if let Some(gid) = numeric(name) {
        return Ok(gid);
    }
    let unknown = || PrivilegeError::UnknownGroup {
        option,
        name: name.to_string(),
    };
    let cname = CString::new(name).map_err(|_| unknown())?;
    let found = with_buffer(|gr, buf, len, out| {
        // SAFETY: getgrnam_r reads the name and writes into what we own.
        unsafe { libc::getgrnam_r(cname.as_ptr(), gr, buf, len, out) }
    })
    .map_err(|source| PrivilegeError::Lookup {
        what: format!("group {name:?}"),
        source,
    })?;
    let gr: libc::group = found.ok_or_else(unknown)?;
    Ok(gr.gr_gid)
}

/// Calls a `get*_r` function with a buffer that grows while it says ERANGE. Returns the entry
/// (its strings point into the buffer, which is gone: only its ids may be used), or `None`.
fn with_buffer<T>(
    mut call: impl FnMut(*mut T, *mut libc::c_char, libc::size_t, *mut *mut T) -> libc::c_int,
) -> io::Result<Option<T>> {
    let mut len = 4096usize;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        // SAFETY: T is one of libc's plain C structs (passwd, group), valid when zeroed.
        let mut entry: T = unsafe { std::mem::zeroed() };
        let mut out: *mut T = std::ptr::null_mut();
        let rc = call(&mut entry, buf.as_mut_ptr(), len, &mut out);
        match rc {
            0 if out.is_null() => return Ok(None),
            0 => return Ok(Some(entry)),
            libc::ERANGE if len < 1 << 20 => len *= 4,
            // "Not found" may come back as one of these instead of a null result.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        let root = resolve(Some("root"), None).unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let by_id = resolve(Some("0"), Some("0")).unwrap().unwrap();
        assert_eq!((by_id.uid, by_id.gid), (0, 0));
        assert_eq!(resolve(None, None).unwrap(), None);
        assert!(matches!(
            resolve(None, Some("root")),
            Err(PrivilegeError::GroupWithoutUser)
        ));
        let e = resolve(Some("no-such-user-ringfast"), None).unwrap_err();
        assert!(e.to_string().contains("no such user"), "{e}");
        let e = resolve(Some("root"), Some("no-such-group-ringfast")).unwrap_err();
        assert!(e.to_string().contains("no such group"), "{e}");
        assert!(matches!(
            resolve(Some("4000000000"), None),
            Err(PrivilegeError::NoPrimaryGroup { .. })
        ));
        assert_eq!(resolve_owner("root:0").unwrap(), (0, 0));
        assert_eq!(resolve_owner("0").unwrap(), (0, 0));
    }
}
