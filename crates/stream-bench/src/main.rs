//! Streaming benchmark: many concurrent `/chat/stream` clients through the server to a fast
//! scripted upstream, compared in the same run with the same clients going straight to the
//! upstream. See `bench/stream/README.md`.

mod client;
mod relay;
mod server;
mod stats;
mod upstream;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde_json::json;

use crate::client::{Run, StreamResult, Target};
use crate::relay::RelayProcess;
use crate::server::{MachineCpu, Peaks, ProcSample, Sampler, ServerProcess};
use crate::stats::{ms, percentile, Percentiles};
use crate::upstream::{Timing, Upstream};

/// Streaming benchmark of `/chat/stream` against a fast scripted upstream.
#[derive(Debug, Parser)]
#[command(name = "stream-bench")]
struct Args {
    /// The server binary (build it with `cargo build --release -p server`).
    #[arg(long, default_value = "target/release/integrator-agent")]
    server_bin: PathBuf,
    /// Concurrency levels (concurrent streams), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    levels: Vec<usize>,
    /// Streams each client runs back to back at every level and path.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Content tokens per answer.
    #[arg(long, default_value_t = 50)]
    tokens: usize,
    /// Delay before each content token, in milliseconds (0 = as fast as possible).
    #[arg(long, default_value_t = 2)]
    token_delay_ms: u64,
    /// Unmeasured streams sent on each path first (10 at a time).
    #[arg(long, default_value_t = 40)]
    warmup: usize,
    /// A stream that has not ended after this many seconds counts as an error.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run the server on this (empty, throw-away) PostgreSQL database instead of SQLite.
    #[arg(long)]
    database_url: Option<String>,
    /// Keep the server's temp data dir (SQLite database, log) and print where it is.
    #[arg(long)]
    keep_data: bool,
    /// Also measure the floor: the same clients through a bare relay on the server's HTTP
    /// stack (no auth, database, billing or sessions), after the server at every level.
    #[arg(long)]
    floor: bool,
    /// With `--floor`: the relay also commits each user message to an SQLite file (one writer
    /// thread, group commit) before it calls the upstream — the least a turn must store first.
    #[arg(long)]
    floor_commit: bool,
    /// Run as that bare relay in front of this upstream (the benchmark starts itself so).
    #[arg(long = "relay-to", hide = true)]
    relay_to: Option<String>,
    /// The bare relay's commit file.
    #[arg(long = "relay-commit", hide = true)]
    relay_commit: Option<PathBuf>,
}

/// One path (direct or server) at one level.
struct Side {
    streams: usize,
    ok: usize,
    errors: BTreeMap<String, usize>,
    tokens: u64,
    wall: Duration,
    ttft: Vec<Duration>,
    before_upstream: Vec<Duration>,
    relay: Vec<Duration>,
    duration: Vec<Duration>,
    /// TTFT of each round apart (round `r` = the `r`-th stream of every client): the first
    /// round starts all clients at once, on new connections.
    ttft_by_round: Vec<Vec<Duration>>,
}

impl Side {
    fn from_run(run: &Run, timings: &HashMap<u64, Timing>, clients: usize) -> Side {
        let mut side = Side {
            streams: run.results.len(),
            ok: 0,
            errors: BTreeMap::new(),
            tokens: 0,
            wall: run.wall,
            ttft: Vec::new(),
            before_upstream: Vec::new(),
            relay: Vec::new(),
            duration: Vec::new(),
            ttft_by_round: Vec::new(),
        };
        let first_id = run.results.iter().map(|r| r.id).min().unwrap_or(0);
        for r in &run.results {
            side.tokens += r.tokens as u64;
            match &r.error {
                None => side.ok += 1,
                Some(e) => {
                    let short: String = e.chars().take(160).collect();
                    *side.errors.entry(short).or_default() += 1;
                }
            }
            if let Some(ttft) = r.ttft() {
                side.ttft.push(ttft);
                let round = ((r.id - first_id) as usize) / clients.max(1);
                if side.ttft_by_round.len() <= round {
                    side.ttft_by_round.resize_with(round + 1, Vec::new);
                }
                side.ttft_by_round[round].push(ttft);
            }
            side.duration.push(r.end - r.start);
            if let Some(timing) = timings.get(&r.id) {
                side.before_upstream
                    .push(timing.arrived.saturating_duration_since(r.start));
                if let (Some(sent), Some(got)) = (timing.first_token, r.first_token) {
                    side.relay.push(got.saturating_duration_since(sent));
                }
            }
        }
        for list in [
            &mut side.ttft,
            &mut side.before_upstream,
            &mut side.relay,
            &mut side.duration,
        ]
        .into_iter()
        .chain(side.ttft_by_round.iter_mut())
        {
            list.sort_unstable();
        }
        side
    }

    fn error_count(&self) -> usize {
        self.streams - self.ok
    }

    fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "streams": self.streams,
            "ok": self.ok,
            "errors": self.errors,
            "tokens": self.tokens,
            "wall_seconds": self.wall.as_secs_f64(),
            "tokens_per_second": self.tokens_per_second(),
            "ttft_ms": Percentiles::of(&self.ttft).to_json(),
            "before_upstream_ms": Percentiles::of(&self.before_upstream).to_json(),
            "first_token_relay_ms": Percentiles::of(&self.relay).to_json(),
            "stream_duration_ms": Percentiles::of(&self.duration).to_json(),
            "ttft_p50_by_round_ms": self.ttft_by_round.iter()
                .map(|round| percentile(round, 50.0).map(ms))
                .collect::<Vec<_>>(),
        })
    }
}

/// Everything measured at one level.
struct Level {
    clients: usize,
    direct: Side,
    server: Side,
    /// The bare relay (`--floor`), and its CPU seconds.
    floor: Option<(Side, f64)>,
    peaks: Peaks,
    after: ProcSample,
    server_cpu: f64,
    bench_cpu_direct: f64,
    bench_cpu_server: f64,
    /// CPU seconds used by every other process on the machine during the two runs.
    others_cpu_direct: f64,
    others_cpu_server: f64,
    /// CPU seconds the host took from the machine's cores during the two runs.
    stolen_direct: f64,
    stolen_server: f64,
    upstream_abandoned: u64,
    stored: Result<usize, String>,
}

impl Level {
    fn overhead(&self, p: f64) -> Option<f64> {
        let server = percentile(&self.server.ttft, p)?;
        let direct = percentile(&self.direct.ttft, p)?;
        Some(ms(server) - ms(direct))
    }

    fn floor_overhead(&self, p: f64) -> Option<f64> {
        let floor = percentile(&self.floor.as_ref()?.0.ttft, p)?;
        let direct = percentile(&self.direct.ttft, p)?;
        Some(ms(floor) - ms(direct))
    }
}

/// Raises the soft limit of open files to the hard limit; returns (soft, hard), `u64::MAX`
/// meaning unlimited.
fn raise_open_files_limit() -> (u64, u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    let limit = if limit.current != limit.maximum && setrlimit(Resource::Nofile, raised).is_ok() {
        raised
    } else {
        limit
    };
    (
        limit.current.unwrap_or(u64::MAX),
        limit.maximum.unwrap_or(u64::MAX),
    )
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| format!("{:.1} GiB RAM", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_default();
    format!("{cores} cores, {cpu}, {memory}, Linux {kernel}")
}

fn cpu_of_self() -> f64 {
    server::sample("self", false)
        .map(|s| s.cpu_seconds)
        .unwrap_or(0.0)
}

/// Reads back a few streamed sessions: the user message and the complete answer must be stored.
async fn check_stored(
    server: &ServerProcess,
    results: &[StreamResult],
    answer: &str,
) -> Result<usize, String> {
    let http = client::http_client(Duration::from_secs(30));
    let sessions: Vec<&str> = results
        .iter()
        .filter(|r| r.error.is_none())
        .filter_map(|r| r.session_id.as_deref())
        .step_by((results.len() / 5).max(1))
        .take(5)
        .collect();
    for session in &sessions {
        let url = format!(
            "{}/rest/v1/ai-agent/api/sessions/{session}/messages",
            server.base_url
        );
        let messages: serde_json::Value = http
            .get(url)
            .bearer_auth(&server.key)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let roles: Vec<&str> = messages
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["role"].as_str()).collect())
            .unwrap_or_default();
        if roles != ["user", "assistant"] || messages[1]["content"].as_str() != Some(answer) {
            return Err(format!("session {session} holds {messages}"));
        }
    }
    Ok(sessions.len())
}

fn fmt_pair(values: &[Duration]) -> String {
    match (percentile(values, 50.0), percentile(values, 99.0)) {
        (Some(a), Some(b)) => format!("{:.2} / {:.2}", ms(a), ms(b)),
        _ => "–".into(),
    }
}

fn fmt_one(values: &[Duration], p: f64) -> String {
    percentile(values, p)
        .map(|d| format!("{:.2}", ms(d)))
        .unwrap_or_else(|| "–".into())
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn print_report(args: &Args, levels: &[Level], baseline: &ProcSample, hwm: u64) {
    println!();
    println!(
        "### Results ({} tokens per answer, {} ms before each token, {} rounds per client)",
        args.tokens, args.token_delay_ms, args.rounds
    );
    println!();
    println!("Times in ms. TTFT = request sent → first token's bytes received by the client. \"Before upstream\" = request sent → the upstream has read the request; \"relay\" = the upstream handed the first token to its connection → the client received it.");
    println!();
    println!("| streams | path | streams ok / run | TTFT p50 | TTFT p90 | TTFT p99 | TTFT max | before upstream p50 / p99 | first-token relay p50 / p99 | stream duration p50 / p99 | tokens/s |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for level in levels {
        let floor = level.floor.as_ref().map(|(side, _)| ("floor", side));
        let sides = [
            Some(("direct", &level.direct)),
            Some(("server", &level.server)),
            floor,
        ];
        for (name, side) in sides.into_iter().flatten() {
            println!(
                "| {} | {name} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
                level.clients,
                side.ok,
                side.streams,
                fmt_one(&side.ttft, 50.0),
                fmt_one(&side.ttft, 90.0),
                fmt_one(&side.ttft, 99.0),
                fmt_one(&side.ttft, 100.0),
                fmt_pair(&side.before_upstream),
                fmt_pair(&side.relay),
                fmt_pair(&side.duration),
                side.tokens_per_second(),
            );
        }
    }
    println!();
    println!("| streams | TTFT overhead p50 | TTFT overhead p99 | server errors | server peak RSS so far (VmHWM) | server RSS max while streaming | server CPU s | bench CPU s (direct / server run) | other processes' CPU s (direct / server run) | CPU stolen by the host s (direct / server run) | server open fds max | server threads max | upstream streams abandoned | stored answers checked |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for level in levels {
        let overhead = |p| {
            level
                .overhead(p)
                .map(|v| format!("{v:+.2} ms"))
                .unwrap_or_else(|| "–".into())
        };
        println!(
            "| {} | {} | {} | {} | {:.1} MB | {:.1} MB | {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {} | {} | {} | {} |",
            level.clients,
            overhead(50.0),
            overhead(99.0),
            level.server.error_count(),
            level.after.hwm_kb as f64 / 1024.0,
            level.peaks.rss_kb as f64 / 1024.0,
            level.server_cpu,
            level.bench_cpu_direct,
            level.bench_cpu_server,
            level.others_cpu_direct,
            level.others_cpu_server,
            level.stolen_direct,
            level.stolen_server,
            level.peaks.open_fds,
            level.peaks.threads,
            level.upstream_abandoned,
            match &level.stored {
                Ok(n) => format!("{n} ok"),
                Err(e) => format!("FAILED: {}", e.chars().take(120).collect::<String>()),
            },
        );
    }
    if levels.iter().any(|l| l.floor.is_some()) {
        println!();
        if args.floor_commit {
            println!("The floor: a bare relay on the server's HTTP stack (axum, hyper, reqwest, tokio) that commits each user message to SQLite (one writer thread, group commit) before the upstream call; no auth, billing or sessions.");
        } else {
            println!("The floor: a bare relay on the server's HTTP stack (axum, hyper, reqwest, tokio), no auth, database, billing or sessions.");
        }
        println!();
        println!("| streams | floor overhead p50 | floor overhead p99 | server above the floor p50 | floor errors | floor CPU s |");
        println!("|---:|---:|---:|---:|---:|---:|");
        for level in levels {
            let Some((side, cpu)) = &level.floor else {
                continue;
            };
            let signed = |v: Option<f64>| {
                v.map(|v| format!("{v:+.2} ms"))
                    .unwrap_or_else(|| "–".into())
            };
            let above = level
                .overhead(50.0)
                .zip(level.floor_overhead(50.0))
                .map(|(server, floor)| server - floor);
            println!(
                "| {} | {} | {} | {} | {} | {cpu:.2} |",
                level.clients,
                signed(level.floor_overhead(50.0)),
                signed(level.floor_overhead(99.0)),
                signed(above),
                side.error_count(),
            );
        }
    }
    println!();
    println!(
        "Server RSS after start-up: {:.1} MB; peak over the whole run (VmHWM): {:.1} MB.",
        baseline.rss_kb as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    for level in levels {
        for (name, side) in [("direct", &level.direct), ("server", &level.server)] {
            for (error, count) in &side.errors {
                println!(
                    "Errors at {} streams, {name} path: {count} × {error}",
                    level.clients
                );
            }
        }
    }
    println!();
    println!("Targets:");
    if let Some(level) = levels.iter().find(|l| l.clients == 100) {
        if let Some(overhead) = level.overhead(50.0) {
            println!(
                "- TTFT overhead p50 ≤ 2 ms at 100 streams: {overhead:.2} ms — {}",
                verdict(overhead <= 2.0)
            );
        }
    }
    if let Some(level) = levels.iter().find(|l| l.clients == 1000) {
        let errors = level.server.error_count();
        println!(
            "- 1,000 concurrent streams with zero errors: {errors} errors — {}",
            verdict(errors == 0)
        );
    }
    println!(
        "- server RSS ≤ 300 MB: peak {:.1} MB — {}",
        hwm as f64 / 1024.0,
        verdict(hwm <= 300 * 1024)
    );
}

/// Where the clients go: straight to the upstream, through the server, and (`--floor`) through
/// the bare relay.
struct Paths<'a> {
    direct: Target,
    through: Target,
    floor: Option<(&'a RelayProcess, Target)>,
}

async fn run_level(
    args: &Args,
    upstream: &Upstream,
    server: &ServerProcess,
    paths: &Paths<'_>,
    clients: usize,
    next_id: &mut u64,
) -> Level {
    let Paths {
        direct,
        through,
        floor,
    } = paths;
    let timeout = Duration::from_secs(args.timeout_secs);
    let per_run = (clients * args.rounds) as u64;

    eprintln!("[{clients} streams] direct to the upstream…");
    let cpu = cpu_of_self();
    let machine_cpu = MachineCpu::now();
    let server_before = server::sample(&server.pid.to_string(), false).unwrap_or_default();
    let run = client::run(direct, clients, args.rounds, *next_id, args.tokens, timeout).await;
    let bench_cpu_direct = cpu_of_self() - cpu;
    let server_cpu = server::sample(&server.pid.to_string(), false)
        .unwrap_or_default()
        .cpu_seconds
        - server_before.cpu_seconds;
    let machine_direct = machine_cpu.elapsed();
    // Clamped: /proc/stat counts in ticks, so an idle machine can come out a tick below zero.
    let others_cpu_direct = (machine_direct.busy - bench_cpu_direct - server_cpu).max(0.0);
    *next_id += per_run;
    let direct_side = Side::from_run(&run, &upstream.take_timings(), clients);
    drop(run);
    tokio::time::sleep(Duration::from_secs(1)).await;

    eprintln!("[{clients} streams] through the server…");
    let before = server::sample(&server.pid.to_string(), false).unwrap_or_default();
    let abandoned_before = upstream.counts().abandoned;
    let sampler = Sampler::start(server.pid, Duration::from_millis(20));
    let cpu = cpu_of_self();
    let machine_cpu = MachineCpu::now();
    let run = client::run(
        through,
        clients,
        args.rounds,
        *next_id,
        args.tokens,
        timeout,
    )
    .await;
    let bench_cpu_server = cpu_of_self() - cpu;
    let machine_server = machine_cpu.elapsed();
    let peaks = sampler.finish().await;
    *next_id += per_run;
    let after = server::sample(&server.pid.to_string(), false).unwrap_or_default();
    let server_side = Side::from_run(&run, &upstream.take_timings(), clients);
    let stored = check_stored(server, &run.results, &upstream::full_answer(args.tokens)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let floor = match floor {
        Some((relay, target)) => {
            eprintln!("[{clients} streams] through the bare relay (the floor)…");
            let pid = relay.pid.to_string();
            let before = server::sample(&pid, false).unwrap_or_default();
            let run =
                client::run(target, clients, args.rounds, *next_id, args.tokens, timeout).await;
            *next_id += per_run;
            let cpu =
                server::sample(&pid, false).unwrap_or_default().cpu_seconds - before.cpu_seconds;
            let side = Side::from_run(&run, &upstream.take_timings(), clients);
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((side, cpu))
        }
        None => None,
    };
    let level = Level {
        clients,
        direct: direct_side,
        server: server_side,
        floor,
        peaks,
        after,
        server_cpu: after.cpu_seconds - before.cpu_seconds,
        bench_cpu_direct,
        bench_cpu_server,
        others_cpu_direct,
        stolen_direct: machine_direct.stolen,
        stolen_server: machine_server.stolen,
        others_cpu_server: (machine_server.busy
            - bench_cpu_server
            - (after.cpu_seconds - before.cpu_seconds))
            .max(0.0),
        upstream_abandoned: upstream.counts().abandoned - abandoned_before,
        stored,
    };
    let by_round = |side: &Side| {
        side.ttft_by_round
            .iter()
            .map(|round| fmt_one(round, 50.0))
            .collect::<Vec<_>>()
            .join(" ")
    };
    eprintln!(
        "[{clients} streams] TTFT p50 direct {} ms, server {} ms (by round: direct {}; \
         server {}); server errors {}; CPU stolen by the host {:.2} s / {:.2} s",
        fmt_one(&level.direct.ttft, 50.0),
        fmt_one(&level.server.ttft, 50.0),
        by_round(&level.direct),
        by_round(&level.server),
        level.server.error_count(),
        level.stolen_direct,
        level.stolen_server,
    );
    level
}

async fn bench(args: &Args) -> Result<(), String> {
    let (soft, hard) = raise_open_files_limit();
    eprintln!("open files limit: {soft} (hard {hard})");
    let needed = (args.levels.iter().max().copied().unwrap_or(0) * 3 + 256) as u64;
    if soft < needed {
        eprintln!("warning: {needed} open files may be needed; raise `ulimit -n`");
    }
    let upstream = Upstream::start(args.tokens, Duration::from_millis(args.token_delay_ms))
        .await
        .map_err(|e| format!("cannot start the upstream: {e}"))?;
    eprintln!("upstream on {}", upstream.base_url);
    let data_dir = tempfile::Builder::new()
        .prefix("stream-bench-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let mut server = ServerProcess::start(
        &args.server_bin,
        data_dir.path(),
        &upstream.base_url,
        args.database_url.as_deref(),
    )
    .await?;
    eprintln!(
        "server pid {} on {} (ready in {:?})",
        server.pid, server.base_url, server.started_in
    );
    let result = measure(args, &upstream, &server).await;
    let stopped = server.stop().await;
    eprintln!("server {stopped}");
    let log = std::fs::read_to_string(&server.log_path).unwrap_or_default();
    let log_lines: Vec<&str> = log.lines().collect();
    let counts = upstream.counts();
    println!();
    println!(
        "Upstream: {} requests, {} streams finished, {} abandoned by their caller (all paths, warm-up included).",
        counts.requests, counts.finished, counts.abandoned
    );
    println!(
        "Server: {stopped}; {} line(s) on stderr at RUST_LOG=warn.",
        log_lines.len()
    );
    for line in log_lines.iter().take(10) {
        println!("    {}", line.chars().take(300).collect::<String>());
    }
    if log_lines.len() > 10 {
        println!("    … {} more", log_lines.len() - 10);
    }
    if args.keep_data {
        let kept = data_dir.keep();
        println!("Data dir kept: {}", kept.display());
    }
    result
}

async fn measure(args: &Args, upstream: &Upstream, server: &ServerProcess) -> Result<(), String> {
    let commit_dir = match args.floor_commit {
        true => Some(tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?),
        false => None,
    };
    let relay = match args.floor || args.floor_commit {
        true => {
            let commit_file = commit_dir.as_ref().map(|dir| dir.path().join("floor.db"));
            Some(RelayProcess::start(&upstream.base_url, commit_file).await?)
        }
        false => None,
    };
    let paths = Paths {
        direct: Target::Direct {
            base_url: upstream.base_url.clone(),
        },
        through: Target::Server {
            base_url: server.base_url.clone(),
            key: server.key.clone(),
        },
        floor: relay.as_ref().map(|relay| {
            (
                relay,
                Target::Floor {
                    base_url: relay.base_url.clone(),
                    key: server.key.clone(),
                },
            )
        }),
    };
    let timeout = Duration::from_secs(args.timeout_secs);
    let mut next_id = 1u64;
    if args.warmup > 0 {
        let rounds = args.warmup.div_ceil(10);
        let floor = paths.floor.as_ref().map(|(_, target)| target);
        let targets = [Some(&paths.direct), Some(&paths.through), floor];
        for target in targets.into_iter().flatten() {
            let run = client::run(target, 10, rounds, next_id, args.tokens, timeout).await;
            next_id += (10 * rounds) as u64;
            let failed: Vec<&StreamResult> =
                run.results.iter().filter(|r| r.error.is_some()).collect();
            if failed.len() == run.results.len() {
                return Err(format!(
                    "every warm-up stream on the {} path failed, e.g. {:?}",
                    target.name(),
                    failed[0].error
                ));
            }
        }
        upstream.take_timings();
    }
    let baseline = server::sample(&server.pid.to_string(), false).unwrap_or_default();
    let mut levels = Vec::new();
    for &clients in &args.levels {
        levels.push(run_level(args, upstream, server, &paths, clients, &mut next_id).await);
    }
    let hwm = server::sample(&server.pid.to_string(), false)
        .map(|s| s.hwm_kb)
        .unwrap_or_else(|| levels.iter().map(|l| l.after.hwm_kb).max().unwrap_or(0));
    println!("Machine: {}", machine());
    println!(
        "Database: {}",
        if args.database_url.is_some() {
            "PostgreSQL (--database-url)"
        } else {
            "SQLite (embedded default)"
        }
    );
    print_report(args, &levels, &baseline, hwm);
    if let Some(path) = &args.json {
        let report = json!({
            "machine": machine(),
            "tokens": args.tokens,
            "token_delay_ms": args.token_delay_ms,
            "rounds": args.rounds,
            "server_rss_after_start_mb": baseline.rss_kb as f64 / 1024.0,
            "server_peak_rss_mb": hwm as f64 / 1024.0,
            "levels": levels.iter().map(|l| json!({
                "streams": l.clients,
                "direct": l.direct.to_json(),
                "server": l.server.to_json(),
                "ttft_overhead_p50_ms": l.overhead(50.0),
                "ttft_overhead_p99_ms": l.overhead(99.0),
                "floor": l.floor.as_ref().map(|(side, cpu)| json!({
                    "path": side.to_json(),
                    "ttft_overhead_p50_ms": l.floor_overhead(50.0),
                    "ttft_overhead_p99_ms": l.floor_overhead(99.0),
                    "cpu_seconds": cpu,
                })),
                "server_rss_max_mb": l.peaks.rss_kb as f64 / 1024.0,
                "server_hwm_mb": l.after.hwm_kb as f64 / 1024.0,
                "server_cpu_seconds": l.server_cpu,
                "bench_cpu_seconds": {"direct": l.bench_cpu_direct, "server": l.bench_cpu_server},
                "other_processes_cpu_seconds": {"direct": l.others_cpu_direct, "server": l.others_cpu_server},
                "cpu_stolen_by_host_seconds": {"direct": l.stolen_direct, "server": l.stolen_server},
                "server_open_fds_max": l.peaks.open_fds,
                "server_threads_max": l.peaks.threads,
                "upstream_streams_abandoned": l.upstream_abandoned,
                "stored_answers": match &l.stored { Ok(n) => json!(n), Err(e) => json!(e) },
            })).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(upstream) = &args.relay_to {
        return match relay::serve(upstream, args.relay_commit.as_deref()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("stream-bench relay: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if args.levels.is_empty() || args.levels.contains(&0) || args.rounds == 0 || args.tokens == 0 {
        eprintln!("levels, rounds and tokens must be positive");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("stream-bench: no runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(&args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stream-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
