//! The server's configuration: a TOML file, every key optional, every limit named
//! here with its default. A bad file is refused at start with a message that names
//! the offending key.

use crate::slots::SlotName;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the database and the session workspaces live.
    pub data_dir: PathBuf,
    /// Where compiled components are cached; default `<data_dir>/cache`.
    pub cache_dir: Option<PathBuf>,
    pub limits: Limits,
    /// Per-slot limits; what a slot leaves out is `limits.component_*`.
    pub slots: BTreeMap<SlotName, SlotConfig>,
    pub admin: Admin,
    /// Slot → path of the `.wasm` serving it; an omitted slot uses the embedded default.
    pub components: BTreeMap<SlotName, PathBuf>,
    pub tenants: Vec<Tenant>,
    /// What each tenant may use, unless its `limits` say otherwise.
    pub tenant_limits: TenantLimits,
    /// Template name → directory copied into a new session's workspace.
    pub templates: BTreeMap<String, PathBuf>,
    pub sandbox: Sandbox,
    /// How log lines are written.
    pub log_format: LogFormat,
    pub metrics: Metrics,
    pub cluster: Cluster,
}

/// `[cluster]`: this server as one runner of many behind a proxy
/// (`docs/scale-out.md`). Alone, it is the runner `local` with no peers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// This runner's name, carried (as a tag) by every session id it mints;
    /// `$RESHOST_RUNNER` or `--runner` overrides it.
    pub runner: String,
    /// Every runner's name → its base URL (`http://host:port`), this one's
    /// included: where the others are asked for their part of a listing.
    pub runners: BTreeMap<String, String>,
    /// On SIGTERM, how long the runner drains before it stops accepting
    /// connections: `/healthz` answers `503` and new sessions are refused (so the
    /// proxy and Kubernetes send them elsewhere) while its sessions are served.
    pub drain_ms: u64,
    /// How long a request to another runner may take.
    pub peer_timeout_ms: u64,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            runner: "local".into(),
            runners: BTreeMap::new(),
            drain_ms: 0,
            peer_timeout_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, with the request's span (its id) in each.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (text or json)")),
        }
    }
}

/// `[metrics]`: who may read `GET /metrics` (nobody: it does not exist, `404`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Bearer tokens for `/metrics`.
    pub tokens: Vec<String>,
    /// The admin tokens may read it too.
    pub admin_tokens: bool,
}

/// `[sandbox]`: how the processes a session starts (shell commands, terminals)
/// are confined.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sandbox {
    pub mode: SandboxMode,
    pub network: SandboxNetwork,
    /// Readable and executable besides the workspace; setting it replaces the default.
    pub read_only: Vec<PathBuf>,
    /// Fully usable besides the workspace and the session's temp dir.
    pub read_write: Vec<PathBuf>,
    /// `PATH` of sandboxed programs.
    pub path: String,
    /// Memory of one command or terminal, everything it started included.
    pub memory_bytes: u64,
    /// Processes (and threads) of one command or terminal at once.
    pub max_processes: u64,
    /// CPU seconds each process may use (`RLIMIT_CPU`); 0: no limit.
    pub cpu_seconds: u64,
    /// Largest file a process may write (`RLIMIT_FSIZE`); 0: no limit.
    pub file_size_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// Every layer is applied; the server refuses to start without one of them.
    Enforce,
    /// Commands run unconfined, as the server's user (an explicit opt-out).
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxNetwork {
    /// The host's network, except the server's own port.
    Full,
    /// A network of its own with only loopback.
    None,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox {
            mode: SandboxMode::Enforce,
            network: SandboxNetwork::Full,
            read_only: [
                "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
            ]
            .map(PathBuf::from)
            .to_vec(),
            read_write: Vec::new(),
            path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            memory_bytes: 2 * 1024 * 1024 * 1024,
            max_processes: 256,
            cpu_seconds: 0,
            file_size_bytes: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted upload (the file part's bytes).
    pub max_upload_bytes: u64,
    /// Largest accepted JSON request body.
    pub max_json_bytes: usize,
    /// How long one component call may run.
    pub component_timeout_ms: u64,
    /// How much linear memory one component instance may use.
    pub component_memory_bytes: usize,
    /// How many component instances may exist at once (the pooling allocator's size).
    pub max_instances: u32,
    /// How long a request waits for a free component instance before `503 server_busy`.
    pub admission_wait_ms: u64,
    /// How many requests may wait for an instance at once; beyond, `503` at once.
    pub admission_queue: usize,
    /// The `Retry-After` of a `503 server_busy`, in seconds.
    pub busy_retry_after_s: u64,
    /// Requests doing their work (policy check, component call) at once (0: as
    /// many as the machine has cores). More wait, each tenant's in turn, for up
    /// to `admission_wait_ms`.
    pub work_turns: usize,
    /// Turns no one tenant takes while another has asked for one within
    /// `reserve_idle_ms`: kept for the others' requests (a tenant alone uses all;
    /// a tenant always may hold one).
    pub reserved_turns: usize,
    /// How long after its last request a tenant still counts as active.
    pub reserve_idle_ms: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_ms: u64,
    /// Memory for the database's page cache.
    pub db_cache_bytes: usize,
    /// How much of a file an environment read returns (the rest is cut, `truncated`).
    pub read_cap_bytes: u64,
    /// Largest environment write or edit request body.
    pub max_write_bytes: usize,
    /// Largest archive body an extraction accepts (as sent, compressed or not).
    pub max_archive_bytes: u64,
    /// Most entries an extracted archive may hold.
    pub max_archive_entries: u64,
    /// Most bytes an extracted archive may unpack to (files' bytes and symlinks'
    /// targets).
    pub max_unpacked_bytes: u64,
    /// Bytes kept of each output stream of a shell command.
    pub shell_output_bytes: usize,
    /// The longest a shell command may run, whatever timeout a component asks for.
    pub max_command_timeout_ms: u64,
    /// Bytes kept of each output stream of a background process (the last ones).
    pub process_output_bytes: usize,
    /// Ended processes listed per session: past it the oldest are forgotten.
    pub process_history: usize,
    /// How long a write to a process's stdin waits for the process to read.
    pub stdin_wait_ms: u64,
    /// How old a tenant's measured workspace bytes may be before a write that
    /// fits them starts a new measurement (in the background; a write that does
    /// not fit always measures first).
    pub workspace_usage_refresh_ms: u64,
    /// The most directory entries one `tree.find` walks, whatever a component asks
    /// for (a search past it is `truncated`).
    pub max_find_visited: u32,
    /// The most matching lines one grep returns, whatever a component asks for
    /// (more are `has_more`).
    pub max_grep_matches: u32,
    /// Files larger than this are skipped by a grep, whatever a component asks.
    pub max_grep_file_bytes: u64,
    /// The most context lines a grep keeps before and after a match, whatever a
    /// component asks.
    pub max_grep_context: u32,
    /// Longer lines (matches and context) are cut to this many bytes in a grep's
    /// results.
    pub max_grep_line_bytes: u32,
    /// Terminal output queued for one attached client before it is cut off as too
    /// slow (close code 1008).
    pub terminal_client_buffer_bytes: usize,
    /// How often idle terminal connections are pinged.
    pub terminal_ping_interval_ms: u64,
    /// How long an event stream stays silent before a keep-alive comment (which
    /// also shows whether its client is still there).
    pub event_keepalive_ms: u64,
    /// File events kept per workspace for clients that resume an event stream.
    pub file_event_ring: usize,
    /// The most scrollback a terminal may keep, whatever its spec or its
    /// component asks.
    pub max_scrollback_bytes: u64,
    /// Largest component an operator may upload through the admin API.
    pub max_component_bytes: usize,
    /// Components kept per slot for rollback (the bound one included).
    pub component_history: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_upload_bytes: 512 * 1024 * 1024,
            max_json_bytes: 1024 * 1024,
            component_timeout_ms: 10_000,
            component_memory_bytes: 64 * 1024 * 1024,
            max_instances: 1000,
            admission_wait_ms: 2000,
            admission_queue: 1000,
            busy_retry_after_s: 1,
            work_turns: 0,
            reserved_turns: 1,
            reserve_idle_ms: 1000,
            shutdown_grace_ms: 30_000,
            db_cache_bytes: 32 * 1024 * 1024,
            read_cap_bytes: 10 * 1024 * 1024,
            max_write_bytes: 16 * 1024 * 1024,
            max_archive_bytes: 512 * 1024 * 1024,
            max_archive_entries: 100_000,
            max_unpacked_bytes: 2 * 1024 * 1024 * 1024,
            shell_output_bytes: 1024 * 1024,
            max_command_timeout_ms: 3_600_000,
            process_output_bytes: 1024 * 1024,
            process_history: 100,
            stdin_wait_ms: 10_000,
            max_find_visited: 1_000_000,
            max_grep_matches: 1000,
            max_grep_file_bytes: 16 * 1024 * 1024,
            max_grep_context: 10,
            max_grep_line_bytes: 1000,
            workspace_usage_refresh_ms: 5000,
            terminal_client_buffer_bytes: 8 * 1024 * 1024,
            terminal_ping_interval_ms: 20_000,
            event_keepalive_ms: 15_000,
            file_event_ring: 4096,
            max_scrollback_bytes: 64 * 1024 * 1024,
            max_component_bytes: 64 * 1024 * 1024,
            component_history: 10,
        }
    }
}

impl Limits {
    /// The bounds every grep is held to.
    pub fn grep_limits(&self) -> crate::caps::grep::GrepLimits {
        crate::caps::grep::GrepLimits {
            max_matches: self.max_grep_matches,
            max_file_bytes: self.max_grep_file_bytes,
            max_context: self.max_grep_context,
            max_line_bytes: self.max_grep_line_bytes,
        }
    }
}

/// `[slots.<slot>]`: the limits of one slot's calls.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotConfig {
    pub memory_bytes: Option<usize>,
    pub timeout_ms: Option<u64>,
}

/// What a slot's calls may use: from the config, or set through the admin API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotLimits {
    /// Linear memory of one instance.
    pub memory_bytes: usize,
    /// Deadline of one call.
    pub timeout_ms: u64,
}

/// Smallest memory a slot may be given: one wasm page.
const MIN_SLOT_MEMORY_BYTES: usize = 1 << 16;
/// Longest deadline a slot may be given (an hour).
const MAX_SLOT_TIMEOUT_MS: u64 = 3_600_000;

/// A slot limit out of range; it names the field.
#[derive(Debug, thiserror::Error)]
#[error("{field} must be {range}")]
pub struct LimitError {
    pub field: &'static str,
    pub range: String,
}

impl SlotLimits {
    /// Checks the limits against the largest memory any instance may have (the
    /// pooling allocator's, `limits.component_memory_bytes`). The config and the
    /// admin API both check with this.
    pub fn check(&self, max_memory_bytes: usize) -> Result<(), LimitError> {
        if !(MIN_SLOT_MEMORY_BYTES..=max_memory_bytes).contains(&self.memory_bytes) {
            return Err(LimitError {
                field: "memory_bytes",
                range: format!(
                    "{MIN_SLOT_MEMORY_BYTES} to {max_memory_bytes} (limits.component_memory_bytes)"
                ),
            });
        }
        if !(1..=MAX_SLOT_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(LimitError {
                field: "timeout_ms",
                range: format!("1 to {MAX_SLOT_TIMEOUT_MS}"),
            });
        }
        Ok(())
    }
}

/// `[admin]`: who may use the admin API (off without tokens).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub tokens: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub name: String,
    pub tokens: Vec<String>,
    pub policy: Option<PathBuf>,
    /// Handed to the tenant's policy component as a JSON object.
    #[serde(default)]
    pub policy_config: toml::Table,
    /// Its own quotas, over `[tenant_limits]` (keys as there).
    #[serde(default)]
    pub limits: toml::Table,
}

/// `[tenant_limits]`: what one tenant may use; 0 is no limit. Over a concurrency or
/// rate quota a request is `429 quota_exceeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantLimits {
    /// `/v1` requests being answered at once.
    pub requests_in_flight: u64,
    /// `/v1` requests a second, on average (a token bucket).
    pub requests_per_second: u64,
    /// Requests that may come at once above the rate (the bucket's size; 0: one
    /// second's worth).
    pub request_burst: u64,
    /// Shell commands running at once.
    pub shell_commands: u64,
    /// Terminals running at once.
    pub terminals: u64,
    /// Sessions.
    pub sessions: u64,
    /// Bytes of stored files (uploads) over all its sessions; over it an upload is
    /// `507 insufficient_storage`.
    pub upload_bytes: u64,
    /// Bytes in its sessions' workspaces, measured (a walk) at each API write,
    /// which is `507 insufficient_storage` over it.
    pub workspace_bytes: u64,
    /// Bytes of new contents its snapshots stored (each snapshot's `new_bytes`,
    /// over all its sessions); a snapshot that would go over it is `507
    /// insufficient_storage` and not kept.
    pub snapshot_bytes: u64,
    /// Snapshots kept over all its sessions; over it a snapshot is `429
    /// quota_exceeded` (each one holds a row per workspace entry, whatever new
    /// contents it stored).
    pub snapshots: u64,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            requests_in_flight: 256,
            requests_per_second: 0,
            request_burst: 0,
            shell_commands: 64,
            terminals: 64,
            sessions: 10_000,
            upload_bytes: 0,
            workspace_bytes: 0,
            snapshot_bytes: 0,
            snapshots: 1000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 6767)),
            data_dir: PathBuf::from("./reshost-data"),
            cache_dir: None,
            limits: Limits::default(),
            slots: BTreeMap::new(),
            admin: Admin::default(),
            components: BTreeMap::new(),
            tenants: Vec::new(),
            tenant_limits: TenantLimits::default(),
            templates: BTreeMap::new(),
            sandbox: Sandbox::default(),
            log_format: LogFormat::default(),
            metrics: Metrics::default(),
            cluster: Cluster::default(),
        }
    }
}

impl Config {
    /// Reads and checks a config file; relative paths in it are relative to its folder.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        self.cache_dir.iter_mut().for_each(fix);
        self.components.values_mut().for_each(fix);
        for tenant in &mut self.tenants {
            tenant.policy.iter_mut().for_each(fix);
        }
        self.templates.values_mut().for_each(fix);
        self.sandbox.read_only.iter_mut().for_each(fix);
        self.sandbox.read_write.iter_mut().for_each(fix);
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("cache"))
    }

    /// A tenant's quotas: its `limits` over `[tenant_limits]`.
    pub fn limits_of(&self, tenant: &Tenant) -> anyhow::Result<TenantLimits> {
        let mut merged = toml::Table::try_from(self.tenant_limits)?;
        merged.extend(tenant.limits.clone());
        Ok(merged.try_into()?)
    }

    /// The limits of a slot's calls: its `[slots.<slot>]`, else `limits.component_*`.
    pub fn slot_limits(&self, slot: SlotName) -> SlotLimits {
        let set = self.slots.get(&slot);
        SlotLimits {
            memory_bytes: set
                .and_then(|s| s.memory_bytes)
                .unwrap_or(self.limits.component_memory_bytes),
            timeout_ms: set
                .and_then(|s| s.timeout_ms)
                .unwrap_or(self.limits.component_timeout_ms),
        }
    }

    /// Checks what the types alone do not: files exist, names are unique, limits sane.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.validate_limits()?;
        self.validate_slots()?;
        self.validate_tenants()?;
        self.validate_sandbox()?;
        self.validate_templates()?;
        self.validate_cluster()
    }

    fn validate_cluster(&self) -> anyhow::Result<()> {
        let c = &self.cluster;
        if !valid_name(&c.runner) {
            bail!(
                "config key cluster.runner: {:?} must be 1-64 characters of [A-Za-z0-9_.-]",
                c.runner
            );
        }
        if c.peer_timeout_ms == 0 {
            bail!("config key cluster.peer_timeout_ms must be greater than 0");
        }
        if !c.runners.is_empty() && !c.runners.contains_key(&c.runner) {
            let known: Vec<&String> = c.runners.keys().collect();
            bail!(
                "config key cluster.runners: this runner {:?} is not among them {known:?}",
                c.runner
            );
        }
        self.validate_runners()
    }

    /// `cluster.runners`: names, base URLs, and tags no two share.
    pub fn validate_runners(&self) -> anyhow::Result<()> {
        let c = &self.cluster;
        let mut tags = BTreeMap::new();
        for (name, url) in &c.runners {
            if !valid_name(name) {
                bail!(
                    "config key cluster.runners: {name:?} must be 1-64 characters of [A-Za-z0-9_.-]"
                );
            }
            crate::cluster::Peer::parse(name, url)
                .map_err(|e| anyhow::anyhow!("config key cluster.runners.{name}: {e}"))?;
            if let Some(other) = tags.insert(crate::cluster::ids::tag(name), name) {
                bail!(
                    "config key cluster.runners: {other:?} and {name:?} have the same id tag; rename one"
                );
            }
        }
        Ok(())
    }

    fn validate_limits(&self) -> anyhow::Result<()> {
        let l = &self.limits;
        let positive = [
            ("limits.max_upload_bytes", l.max_upload_bytes),
            ("limits.max_json_bytes", l.max_json_bytes as u64),
            ("limits.component_timeout_ms", l.component_timeout_ms),
            (
                "limits.component_memory_bytes",
                l.component_memory_bytes as u64,
            ),
            ("limits.max_instances", u64::from(l.max_instances)),
            ("limits.admission_queue", l.admission_queue as u64),
            ("limits.busy_retry_after_s", l.busy_retry_after_s),
            ("limits.read_cap_bytes", l.read_cap_bytes),
            ("limits.max_write_bytes", l.max_write_bytes as u64),
            ("limits.max_archive_bytes", l.max_archive_bytes),
            ("limits.max_archive_entries", l.max_archive_entries),
            ("limits.max_unpacked_bytes", l.max_unpacked_bytes),
            ("limits.shell_output_bytes", l.shell_output_bytes as u64),
            ("limits.max_command_timeout_ms", l.max_command_timeout_ms),
            ("limits.process_output_bytes", l.process_output_bytes as u64),
            ("limits.process_history", l.process_history as u64),
            ("limits.stdin_wait_ms", l.stdin_wait_ms),
            ("limits.max_find_visited", u64::from(l.max_find_visited)),
            ("limits.max_grep_matches", u64::from(l.max_grep_matches)),
            ("limits.max_grep_file_bytes", l.max_grep_file_bytes),
            (
                "limits.max_grep_line_bytes",
                u64::from(l.max_grep_line_bytes),
            ),
            (
                "limits.terminal_client_buffer_bytes",
                l.terminal_client_buffer_bytes as u64,
            ),
            (
                "limits.terminal_ping_interval_ms",
                l.terminal_ping_interval_ms,
            ),
            ("limits.event_keepalive_ms", l.event_keepalive_ms),
            ("limits.file_event_ring", l.file_event_ring as u64),
            ("limits.max_component_bytes", l.max_component_bytes as u64),
            ("limits.max_scrollback_bytes", l.max_scrollback_bytes),
            ("limits.component_history", l.component_history as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                bail!("config key {key} must be greater than 0");
            }
        }
        if l.component_memory_bytes < 1 << 20 {
            bail!("config key limits.component_memory_bytes must be at least 1048576");
        }
        Ok(())
    }

    fn validate_slots(&self) -> anyhow::Result<()> {
        let max = self.limits.component_memory_bytes;
        for &slot in SlotName::ALL {
            let limits = self.slot_limits(slot);
            if let Err(e) = limits.check(max) {
                // A slot's own value, or the default from `limits` it left to them.
                let own = self.slots.get(&slot).is_some_and(|s| match e.field {
                    "memory_bytes" => s.memory_bytes.is_some(),
                    _ => s.timeout_ms.is_some(),
                });
                let key = match own {
                    true => format!("slots.{}.{}", slot.as_str(), e.field),
                    false => format!("limits.component_{}", e.field),
                };
                bail!("config key {key} must be {}", e.range);
            }
        }
        for (slot, path) in &self.components {
            if !path.is_file() {
                bail!(
                    "config key components.{}: no such file {}",
                    slot.as_str(),
                    path.display()
                );
            }
        }
        Ok(())
    }

    fn validate_tenants(&self) -> anyhow::Result<()> {
        for token in &self.admin.tokens {
            check_token("admin.tokens", token)?;
            if self.tenants.iter().any(|t| t.tokens.contains(token)) {
                bail!("config key admin.tokens: a token is also a tenant's");
            }
        }
        let mut names = std::collections::HashSet::new();
        let mut tokens = std::collections::HashSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            if !valid_name(&t.name) {
                bail!(
                    "config key tenants[{i}].name: {:?} must be 1-64 characters of [A-Za-z0-9_.-]",
                    t.name
                );
            }
            if !names.insert(&t.name) {
                bail!(
                    "config key tenants[{i}].name: tenant {:?} is defined twice",
                    t.name
                );
            }
            if t.tokens.is_empty() {
                bail!(
                    "config key tenants[{i}].tokens: tenant {:?} has no tokens",
                    t.name
                );
            }
            for token in &t.tokens {
                check_token(&format!("tenants[{i}].tokens"), token)?;
                if !tokens.insert(token) {
                    bail!("config key tenants[{i}].tokens: a token is used twice");
                }
            }
            if let Some(path) = &t.policy
                && !path.is_file()
            {
                bail!(
                    "config key tenants[{i}].policy: no such file {}",
                    path.display()
                );
            }
            self.limits_of(t)
                .with_context(|| format!("config key tenants[{i}].limits"))?;
        }
        Ok(())
    }

    fn validate_sandbox(&self) -> anyhow::Result<()> {
        let sb = &self.sandbox;
        if sb.memory_bytes < 16 << 20 {
            bail!("config key sandbox.memory_bytes must be at least 16777216 (16 MiB)");
        }
        if sb.max_processes < 8 {
            bail!("config key sandbox.max_processes must be at least 8");
        }
        if sb.path.is_empty() {
            bail!("config key sandbox.path must not be empty");
        }
        for (key, paths) in [
            ("sandbox.read_only", &sb.read_only),
            ("sandbox.read_write", &sb.read_write),
        ] {
            if let Some(bad) = paths.iter().find(|p| p.as_os_str().is_empty()) {
                bail!("config key {key}: {bad:?} is not a path");
            }
        }
        Ok(())
    }

    fn validate_templates(&self) -> anyhow::Result<()> {
        for (name, dir) in &self.templates {
            if !valid_name(name) {
                bail!(
                    "config key templates.{name}: names must be 1-64 characters of [A-Za-z0-9_.-]"
                );
            }
            if !dir.is_dir() {
                bail!(
                    "config key templates.{name}: no such directory {}",
                    dir.display()
                );
            }
        }
        Ok(())
    }
}

/// Tokens go in `Authorization` headers: non-empty, without spaces or controls.
fn check_token(key: &str, token: &str) -> anyhow::Result<()> {
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("config key {key}: a token must be non-empty, without spaces");
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(memory_bytes: usize, timeout_ms: u64) -> Result<(), &'static str> {
        SlotLimits {
            memory_bytes,
            timeout_ms,
        }
        .check(1 << 20)
        .map_err(|e| e.field)
    }

    #[test]
    fn slot_limits_are_checked_at_both_ends_of_each_range() {
        assert_eq!(limits(1 << 16, 1), Ok(()));
        assert_eq!(limits(1 << 20, 3_600_000), Ok(()));
        assert_eq!(limits((1 << 16) - 1, 1), Err("memory_bytes"));
        assert_eq!(limits((1 << 20) + 1, 1), Err("memory_bytes"));
        assert_eq!(limits(1 << 16, 0), Err("timeout_ms"));
        assert_eq!(limits(1 << 16, 3_600_001), Err("timeout_ms"));
    }

    #[test]
    fn a_slot_without_limits_of_its_own_takes_the_defaults() {
        let mut config: Config = toml::from_str("[slots.files]\ntimeout_ms = 250\n").unwrap();
        config.limits.component_memory_bytes = 1 << 21;
        let files = config.slot_limits(SlotName::Files);
        assert_eq!((files.memory_bytes, files.timeout_ms), (1 << 21, 250));
        let policy = config.slot_limits(SlotName::Policy);
        assert_eq!(policy.timeout_ms, config.limits.component_timeout_ms);
    }
}
