//! Process figures, read from `/proc` at each scrape and rendered with the standard names of the
//! Prometheus client libraries' process collector (`process_*`).

use std::fmt::Write as _;

use super::names;

/// What `/proc` says about this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ProcessStats {
    pub(crate) cpu_seconds: f64,
    pub(crate) resident_bytes: u64,
    pub(crate) virtual_bytes: u64,
    pub(crate) start_time_seconds: f64,
    pub(crate) open_fds: u64,
    pub(crate) max_fds: Option<u64>,
}

/// Parses `/proc/self/stat` (`stat`), given the clock tick rate, the page size and the boot time
/// (`btime` of `/proc/stat`, seconds since the epoch).
fn parse_stat(stat: &str, ticks: f64, page: u64, boot_time: u64) -> Option<ProcessStats> {
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field N is f[N - 3].
    let num = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(ProcessStats {
        cpu_seconds: (num(14)? + num(15)?) as f64 / ticks,
        start_time_seconds: boot_time as f64 + num(22)? as f64 / ticks,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * page,
        open_fds: 0,
        max_fds: None,
    })
}

fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads the figures; `None` where `/proc` is not mounted.
pub(crate) fn read() -> Option<ProcessStats> {
    // SAFETY: sysconf only reads system configuration.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let mut s = parse_stat(
        &stat,
        ticks.max(1) as f64,
        page.max(1) as u64,
        boot_time().unwrap_or(0),
    )?;
    s.open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0
        && lim.rlim_cur != libc::RLIM_INFINITY
    {
        s.max_fds = Some(lim.rlim_cur);
    }
    Some(s)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
    );
}

/// Appends the process figures in the Prometheus text format.
pub(crate) fn render(out: &mut String) {
    let Some(s) = read() else { return };
    render_stats(out, &s);
}

pub(crate) fn render_stats(out: &mut String, s: &ProcessStats) {
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    family(
        out,
        names::PROCESS_CPU_SECONDS,
        "counter",
        "Total user and system CPU time spent in seconds.",
        s.cpu_seconds,
    );
    family(
        out,
        names::PROCESS_RESIDENT_MEMORY,
        "gauge",
        "Resident memory size in bytes.",
        s.resident_bytes as f64,
    );
    family(
        out,
        names::PROCESS_VIRTUAL_MEMORY,
        "gauge",
        "Virtual memory size in bytes.",
        s.virtual_bytes as f64,
    );
    family(
        out,
        names::PROCESS_OPEN_FDS,
        "gauge",
        "Number of open file descriptors.",
        s.open_fds as f64,
    );
    if let Some(max) = s.max_fds {
        family(
            out,
            names::PROCESS_MAX_FDS,
            "gauge",
            "Maximum number of open file descriptors.",
            max as f64,
        );
    }
    family(
        out,
        names::PROCESS_START_TIME,
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        s.start_time_seconds,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        // Fields 14/15 (utime/stime) = 250/50 ticks, 22 (starttime) = 1000, 23 vsize, 24 rss pages.
        let stat = "42 (ring fast) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 \
                    123456789 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let s = parse_stat(stat, 100.0, 4096, 1_700_000_000).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.start_time_seconds, 1_700_000_010.0);
        assert_eq!(s.virtual_bytes, 123_456_789);
        assert_eq!(s.resident_bytes, 300 * 4096);
    }

    #[test]
    fn reads_this_process() {
        let s = read().expect("/proc is mounted");
        assert!(s.resident_bytes > 0);
        assert!(s.open_fds >= 3);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(s.start_time_seconds > now - 86400.0 * 365.0 && s.start_time_seconds <= now + 1.0);
        let mut out = String::new();
        render_stats(&mut out, &s);
        assert!(out.contains("# TYPE process_cpu_seconds_total counter\n"));
    }
}
