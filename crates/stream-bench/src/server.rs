//! The server under test as a child process, and what `/proc` says about it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const KEY_LINE: &str = "Admin API key (shown once, store it now): ";
const LISTEN_LINE: &str = "listening on ";

/// The running server.
pub struct ServerProcess {
    child: Child,
    pub pid: u32,
    pub base_url: String,
    pub key: String,
    pub log_path: PathBuf,
    pub started_in: Duration,
}

impl ServerProcess {
    /// Starts `serve` on a free loopback port with an empty data dir, against the upstream.
    pub async fn start(
        binary: &Path,
        data_dir: &Path,
        upstream_base_url: &str,
        database_url: Option<&str>,
    ) -> Result<ServerProcess, String> {
        let log_path = data_dir.join("server-stderr.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let began = Instant::now();
        let mut command = Command::new(binary);
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.join("data"))
            .env("OPENAI_API_KEY", "sk-bench")
            .env("OPENAI_BASE_URL", upstream_base_url)
            .env("INTEGRATOR_MODEL", "gpt-bench")
            .env("RUST_LOG", "warn")
            // Managed usage is billed and capped, and every call in flight holds a reservation
            // of ~$0.0085: raise the allowances so that the cap never refuses a stream here.
            .env("INTEGRATOR_ALLOWANCE_FREE_USD", "1000000")
            .env("INTEGRATOR_ALLOWANCE_STANDARD_USD", "1000000")
            .env("INTEGRATOR_ALLOWANCE_PROFESSIONAL_USD", "1000000")
            .env_remove("INTEGRATOR_DATABASE_URL")
            .env_remove("INTEGRATOR_ADDR")
            .env_remove("INTEGRATOR_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        if let Some(url) = database_url {
            command.env("INTEGRATOR_DATABASE_URL", url);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let pid = child.id().ok_or("the server exited at once")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut key = None;
        let mut base_url = None;
        let waited = tokio::time::timeout(Duration::from_secs(180), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split(KEY_LINE).nth(1) {
                    key = Some(rest.trim().to_string());
                }
                if let Some(rest) = line.split(LISTEN_LINE).nth(1) {
                    base_url = Some(rest.trim().trim_end_matches('/').to_string());
                    break;
                }
            }
        })
        .await;
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let mut server = ServerProcess {
            child,
            pid,
            base_url: String::new(),
            key: String::new(),
            log_path,
            started_in: began.elapsed(),
        };
        match (waited, key, base_url) {
            (Ok(()), Some(key), Some(base_url)) => {
                server.key = key;
                server.base_url = base_url;
                Ok(server)
            }
            _ => {
                let _ = server.stop().await;
                Err(format!(
                    "the server did not print its key and address (see {})",
                    server.log_path.display()
                ))
            }
        }
    }

    /// SIGTERM, then SIGKILL after 20 s; says how it ended and how long it took.
    pub async fn stop(&mut self) -> String {
        let began = Instant::now();
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("had already exited ({status})");
        }
        // Our own child, not reaped yet: the pid is still its own.
        if let Some(pid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(Ok(status)) => format!("stopped by SIGTERM in {:?} ({status})", began.elapsed()),
            _ => {
                let _ = self.child.kill().await;
                "did not stop within 20 s of SIGTERM; killed".to_string()
            }
        }
    }
}

/// One look at a process in `/proc`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcSample {
    pub rss_kb: u64,
    /// Peak resident set size since the process started.
    pub hwm_kb: u64,
    pub threads: u64,
    /// User + system CPU time, in seconds.
    pub cpu_seconds: f64,
    pub open_fds: u64,
}

fn status_field(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds from the text of `/proc/PID/stat` (fields 14 and 15, after the command name).
pub fn cpu_seconds_from_stat(stat: &str) -> f64 {
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks as f64 / clock_ticks_per_second()
}

/// CPU seconds of the whole machine (all cores, from `/proc/stat`): busy running processes
/// (everything but idle, iowait and steal), and stolen by the host (the hypervisor ran
/// something else on our virtual cores: a run with much of it measured a disturbed machine).
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub busy: f64,
    pub stolen: f64,
}

impl MachineCpu {
    /// The machine's totals since boot.
    pub fn now() -> MachineCpu {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        machine_cpu_from_stat(&stat)
    }

    /// What the machine used since `self` was read.
    pub fn elapsed(&self) -> MachineCpu {
        let now = MachineCpu::now();
        MachineCpu {
            busy: now.busy - self.busy,
            stolen: now.stolen - self.stolen,
        }
    }
}

fn machine_cpu_from_stat(stat: &str) -> MachineCpu {
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = ticks
        .iter()
        .take(7)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    let stolen = ticks.get(7).copied().unwrap_or(0);
    MachineCpu {
        busy: busy as f64 / clock_ticks_per_second(),
        stolen: stolen as f64 / clock_ticks_per_second(),
    }
}

fn clock_ticks_per_second() -> f64 {
    match rustix::param::clock_ticks_per_second() {
        0 => 100.0,
        n => n as f64,
    }
}

/// Reads `/proc/PID` (`"self"` for this process); `None` once the process is gone.
pub fn sample(pid: &str, count_fds: bool) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open_fds = if count_fds {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|dir| dir.count() as u64)
            .unwrap_or(0)
    } else {
        0
    };
    Some(ProcSample {
        rss_kb: status_field(&status, "VmRSS:"),
        hwm_kb: status_field(&status, "VmHWM:"),
        threads: status_field(&status, "Threads:"),
        cpu_seconds: cpu_seconds_from_stat(&stat),
        open_fds,
    })
}

/// The largest values seen while sampling.
#[derive(Debug, Default, Clone, Copy)]
pub struct Peaks {
    pub rss_kb: u64,
    pub threads: u64,
    pub open_fds: u64,
    pub samples: u64,
}

/// Samples a process every `every` until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Peaks>,
}

impl Sampler {
    pub fn start(pid: u32, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peaks = Peaks::default();
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let pid = pid.to_string();
                let Ok(Some(s)) = tokio::task::spawn_blocking(move || sample(&pid, true)).await
                else {
                    break;
                };
                peaks.rss_kb = peaks.rss_kb.max(s.rss_kb);
                peaks.threads = peaks.threads.max(s.threads);
                peaks.open_fds = peaks.open_fds.max(s.open_fds);
                peaks.samples += 1;
                if flag.load(Ordering::Relaxed) {
                    break;
                }
            }
            peaks
        });
        Sampler { stop, task }
    }

    pub async fn finish(self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_after_a_command_name_with_spaces() {
        let stat = "1234 (integrator agent) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
        let expected = 300.0 / clock_ticks_per_second();
        assert!((cpu_seconds_from_stat(stat) - expected).abs() < 1e-9);
        assert!(MachineCpu::now().busy > 0.0);
    }

    #[test]
    fn counts_stolen_time_apart_from_busy_time() {
        let stat = "cpu  100 0 50 900 7 3 2 40 0 0\ncpu0 50 0 25 450 3 1 1 20 0 0\n";
        let cpu = machine_cpu_from_stat(stat);
        let tick = 1.0 / clock_ticks_per_second();
        assert!((cpu.busy - 155.0 * tick).abs() < 1e-9);
        assert!((cpu.stolen - 40.0 * tick).abs() < 1e-9);
    }

    #[test]
    fn reads_this_process() {
        let me = sample("self", true).expect("/proc/self");
        assert!(me.rss_kb > 0 && me.hwm_kb >= me.rss_kb && me.threads >= 1);
    }
}
