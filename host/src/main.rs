//! `reshost serve [--config FILE] [--listen ADDR] [--data-dir DIR] [--runner NAME]`,
//! `reshost cluster proxy-config [--config FILE] [--listen ADDR]`

use reshost::config::{Config, LogFormat};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Scheduler ticks between the runtime's looks for ready sockets while its
/// threads are busy (tokio's default: 61). A request that arrives while a flood
/// keeps every thread busy starts sooner: measured on 2 cores, a quiet tenant's
/// p99 under a flood fell by a fifth, at no cost in requests/s
/// (`examples/bench_fairness.rs`, `examples/bench.rs`).
const IO_POLL_INTERVAL: u32 = 4;

const USAGE: &str = "usage: reshost serve [--config FILE] [--listen ADDR] [--data-dir DIR] [--log-format text|json] [--runner NAME]
       reshost cluster proxy-config [--config FILE] [--listen ADDR]

serve: serves the session resources API. Without --config every setting has its
default (listen 127.0.0.1:6767, data dir ./reshost-data, embedded components).
Without tenants in the config, the one tenant `default` uses the token in
$RESHOST_TOKEN, or a random one printed at start. Logs: RESHOST_LOG=debug;
--log-format json (or log_format = \"json\" in the config) writes JSON lines.
--runner (or $RESHOST_RUNNER) names this runner, over cluster.runner.

cluster proxy-config: prints the HAProxy configuration that routes to the
config's [cluster.runners], listening on ADDR (default 0.0.0.0:8080).";

/// What the command line asks for.
enum Command {
    Serve(Config, Option<PathBuf>),
    ProxyConfig(Config, std::net::SocketAddr),
}

fn parse(args: &[String]) -> Result<Command, String> {
    let mut args = args.iter();
    let proxy = match (args.next().map(String::as_str), args.clone().next()) {
        (Some("serve"), _) => false,
        (Some("cluster"), Some(sub)) if sub == "proxy-config" => {
            args.next();
            true
        }
        (Some("-h" | "--help") | None, _) => return Err(USAGE.into()),
        (Some(other), _) => return Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    let (mut config_path, mut listen, mut data_dir, mut log_format) = (None, None, None, None);
    let mut runner = std::env::var("RESHOST_RUNNER")
        .ok()
        .filter(|r| !r.is_empty());
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--config" => config_path = Some(PathBuf::from(value()?)),
            "--listen" => listen = Some(value()?),
            "--data-dir" if !proxy => data_dir = Some(PathBuf::from(value()?)),
            "--log-format" if !proxy => log_format = Some(value()?.parse()?),
            "--runner" if !proxy => runner = Some(value()?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
    }
    let mut config = match &config_path {
        Some(path) => Config::load(path).map_err(|e| format!("{e:#}"))?,
        None => Config::default(),
    };
    let listen = listen
        .map(|listen| {
            listen
                .parse()
                .map_err(|e| format!("--listen {listen:?}: {e}"))
        })
        .transpose()?;
    if proxy {
        let listen = listen.unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 8080)));
        return Ok(Command::ProxyConfig(config, listen));
    }
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    if let Some(format) = log_format {
        config.log_format = format;
    }
    if let Some(runner) = runner {
        config.cluster.runner = runner;
    }
    Ok(Command::Serve(config, config_path))
}

/// Caps glibc's malloc arenas at one per core (its default is eight per core),
/// unless `$MALLOC_ARENA_MAX` says otherwise. Each thread that allocates gets an
/// arena, and an arena keeps what it once held: eight concurrent 100 MiB
/// uploads, written on eight blocking threads, left +110 MiB of resident memory
/// with the default and +43 MiB with two arenas on two cores, at the same speed
/// (`examples/bench_fast.rs`).
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // SAFETY: mallopt only sets a tunable; called before any thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, cores.max(2) as libc::c_int) };
    }
}

fn main() -> ExitCode {
    cap_malloc_arenas();
    // A confined launch (see `reshost::sandbox`): first, before any thread exists.
    let mut raw = std::env::args_os().skip(1);
    if raw.next().is_some_and(|a| a == reshost::EXEC_SUBCOMMAND) {
        reshost::exec_main(&raw.collect::<Vec<_>>());
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, config_path) = match parse(&args) {
        Ok(Command::Serve(config, path)) => (config, path),
        Ok(Command::ProxyConfig(config, listen)) => {
            return match reshost::cluster::proxy_config::render(&config, listen) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("reshost: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Err(message) => {
            eprintln!("reshost: {message}");
            return ExitCode::from(2);
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RESHOST_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(IO_POLL_INTERVAL)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("reshost: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(reshost::run(config, config_path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reshost: {e:#}");
            ExitCode::FAILURE
        }
    }
}
