//! Reading /proc: per-process CPU time and memory, the process tree of a contender, and the CPU
//! used by everything else on the machine (to tell a quiet run from a noisy one).

use std::collections::{HashMap, HashSet};
use std::fs;

/// What /proc/PID/stat says about one process (all its threads together).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// Process id.
    pub pid: i32,
    /// Command name (without the parentheses).
    pub comm: String,
    /// Parent pid.
    pub ppid: i32,
    /// Process group.
    pub pgrp: i32,
    /// utime + stime of every thread, in clock ticks.
    pub ticks: u64,
    /// Start time after boot, in clock ticks (tells a reused pid apart).
    pub start: u64,
}

/// Parses the text of /proc/PID/stat. The command name may contain spaces and parentheses, so
/// the fields after it are found from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_string();
    // Fields from 3 (state) on; index 0 here is field 3.
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { rest.get(n - 3)?.parse().ok() };
    Some(ProcStat {
        pid,
        comm,
        ppid: rest.get(1)?.parse().ok()?,
        pgrp: rest.get(2)?.parse().ok()?,
        ticks: field(14)? + field(15)?,
        start: field(22)?,
    })
}

/// /proc/PID/stat of one process, if it exists.
pub fn read_stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process on the machine, by pid.
pub fn snapshot() -> HashMap<i32, ProcStat> {
    let mut all = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return all;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(st) = read_stat(pid) {
            all.insert(pid, st);
        }
    }
    all
}

/// The processes belonging to `roots`: the roots, their descendants, and every process in the
/// process group of a root (each service is started as its own group leader).
pub fn family(snap: &HashMap<i32, ProcStat>, roots: &[i32]) -> HashSet<i32> {
    let mut set: HashSet<i32> = roots
        .iter()
        .copied()
        .filter(|p| snap.contains_key(p))
        .collect();
    for st in snap.values() {
        if roots.contains(&st.pgrp) {
            set.insert(st.pid);
        }
    }
    loop {
        let before = set.len();
        for st in snap.values() {
            if set.contains(&st.ppid) {
                set.insert(st.pid);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

/// Sum of CPU ticks of `pids` in `snap`.
pub fn ticks_of(snap: &HashMap<i32, ProcStat>, pids: &HashSet<i32>) -> u64 {
    pids.iter()
        .filter_map(|p| snap.get(p))
        .map(|s| s.ticks)
        .sum()
}

/// CPU ticks used between two snapshots by processes outside `ours` (kernel threads excluded):
/// what the rest of the machine did during a run.
pub fn foreign_ticks(
    before: &HashMap<i32, ProcStat>,
    after: &HashMap<i32, ProcStat>,
    ours: &HashSet<i32>,
) -> (u64, Vec<(String, u64)>) {
    let mut total = 0;
    let mut top = Vec::new();
    for st in after.values() {
        if ours.contains(&st.pid) || is_kernel_thread(st) {
            continue;
        }
        let prev = before
            .get(&st.pid)
            .filter(|b| b.start == st.start)
            .map_or(0, |b| b.ticks);
        let used = st.ticks.saturating_sub(prev);
        if used > 0 {
            total += used;
            top.push((st.comm.clone(), used));
        }
    }
    top.sort_by_key(|t| std::cmp::Reverse(t.1));
    top.truncate(5);
    (total, top)
}

fn is_kernel_thread(st: &ProcStat) -> bool {
    st.pid == 2 || st.ppid == 2
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Memory of a set of processes: proportional set size (shared pages split between the
/// processes sharing them, so a prefork server is not counted N times) and plain RSS, in KiB.
pub fn memory_kib(pids: &HashSet<i32>) -> (u64, u64) {
    let mut pss = 0;
    let mut rss = 0;
    for pid in pids {
        if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            pss += kib_field(&text, "Pss:").unwrap_or(0);
            rss += kib_field(&text, "Rss:").unwrap_or(0);
        } else if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/status")) {
            let r = kib_field(&text, "VmRSS:").unwrap_or(0);
            rss += r;
            pss += r;
        }
    }
    (pss, rss)
}

/// `Name:   1234 kB` from a /proc key-value file.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Ticks the hypervisor took from this machine's CPUs (`steal` of the `cpu` line of /proc/stat):
/// a noisy neighbour outside the machine, invisible in the process list.
pub fn steal_ticks() -> Option<u64> {
    parse_steal(&fs::read_to_string("/proc/stat").ok()?)
}

/// The steal field (the 8th value) of the aggregate `cpu` line.
pub fn parse_steal(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    line.split_whitespace().nth(8)?.parse().ok()
}

/// The distinct `Cpus_allowed_list` values of every thread of `pids` (checks the pinning).
pub fn allowed_cpus(pids: &HashSet<i32>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for pid in pids {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(text) = fs::read_to_string(t.path().join("status")) else {
                continue;
            };
            if let Some(v) = text
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_string())
            {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
    }
    out.sort();
    out
}

/// The 1-minute load average.
pub fn loadavg() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Number of online CPUs.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(pid: i32, ppid: i32, pgrp: i32, ticks: u64) -> ProcStat {
        ProcStat {
            pid,
            comm: format!("p{pid}"),
            ppid,
            pgrp,
            ticks,
            start: 1,
        }
    }

    #[test]
    fn parses_a_stat_line_with_spaces_in_the_name() {
        let line = "4242 (php-fpm: pool (x) www) S 4240 4240 4240 0 -1 4194624 300 0 0 0 \
                    17 5 0 0 20 0 1 0 9876 1000 200 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.pid, 4242);
        assert_eq!(s.comm, "php-fpm: pool (x) www");
        assert_eq!(s.ppid, 4240);
        assert_eq!(s.pgrp, 4240);
        assert_eq!(s.ticks, 22);
        assert_eq!(s.start, 9876);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn reads_our_own_process() {
        let me = read_stat(std::process::id() as i32).unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
    }

    #[test]
    fn family_takes_descendants_and_the_group() {
        let snap: HashMap<i32, ProcStat> = [
            st(10, 1, 10, 5),
            st(11, 10, 10, 7),
            st(12, 11, 12, 1), // its own group, but a descendant
            st(13, 1, 10, 2),  // reparented to init, same group
            st(20, 1, 20, 100),
        ]
        .into_iter()
        .map(|s| (s.pid, s))
        .collect();
        let fam = family(&snap, &[10]);
        assert_eq!(fam, HashSet::from([10, 11, 12, 13]));
        assert_eq!(ticks_of(&snap, &fam), 15);
    }

    #[test]
    fn foreign_ticks_skip_ours_and_kernel_threads_and_count_new_processes() {
        let before: HashMap<i32, ProcStat> =
            [st(10, 1, 10, 5), st(20, 1, 20, 100), st(30, 2, 0, 0)]
                .into_iter()
                .map(|s| (s.pid, s))
                .collect();
        let after: HashMap<i32, ProcStat> = [
            st(10, 1, 10, 50),
            st(20, 1, 20, 130),
            st(30, 2, 0, 40),
            st(40, 1, 40, 9),
        ]
        .into_iter()
        .map(|s| (s.pid, s))
        .collect();
        let (t, top) = foreign_ticks(&before, &after, &HashSet::from([10]));
        assert_eq!(t, 39);
        assert_eq!(top[0], ("p20".to_string(), 30));
    }

    #[test]
    fn steal_from_proc_stat() {
        let stat =
            "cpu  579775 14572 142878 255058 4383 0 12628 3569 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(parse_steal(stat), Some(3569));
        assert_eq!(parse_steal("intr 1 2"), None);
        assert!(steal_ticks().is_some());
    }

    #[test]
    fn allowed_cpus_of_our_threads() {
        let cpus = allowed_cpus(&HashSet::from([std::process::id() as i32]));
        assert!(!cpus.is_empty());
    }

    #[test]
    fn kib_fields() {
        let text = "Rss:    1200 kB\nPss:     300 kB\n";
        assert_eq!(kib_field(text, "Pss:"), Some(300));
        assert_eq!(kib_field(text, "Swap:"), None);
    }
}
