//! The server's configuration: a TOML file, every key optional, every limit named
//! here with its default. A bad file is refused at start with a message that names
//! the offending key.

use anyhow::{Context, bail};
use serde::Deserialize;
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
    pub slots: BTreeMap<String, SlotConfig>,
    pub admin: Admin,
    /// Slot name → path of the `.wasm` serving it; an omitted slot uses the embedded default.
    pub components: Components,
    pub tenants: Vec<Tenant>,
    /// Template name → directory copied into a new session's workspace.
    pub templates: BTreeMap<String, PathBuf>,
    pub sandbox: Sandbox,
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
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_ms: u64,
    /// Memory for the database's page cache.
    pub db_cache_bytes: usize,
    /// How much of a file an environment read returns (the rest is cut, `truncated`).
    pub read_cap_bytes: u64,
    /// Largest environment write or edit request body.
    pub max_write_bytes: usize,
    /// Bytes kept of each output stream of a shell command.
    pub shell_output_bytes: usize,
    /// Terminal output queued for one attached client before it is cut off as too
    /// slow (close code 1008).
    pub terminal_client_buffer_bytes: usize,
    /// How often idle terminal connections are pinged.
    pub terminal_ping_interval_ms: u64,
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
            shutdown_grace_ms: 30_000,
            db_cache_bytes: 32 * 1024 * 1024,
            read_cap_bytes: 10 * 1024 * 1024,
            max_write_bytes: 16 * 1024 * 1024,
            shell_output_bytes: 1024 * 1024,
            terminal_client_buffer_bytes: 8 * 1024 * 1024,
            terminal_ping_interval_ms: 20_000,
            max_component_bytes: 64 * 1024 * 1024,
            component_history: 10,
        }
    }
}

/// The slots a config may set limits for.
pub const SLOTS: [&str; 4] = ["files", "environments", "terminals", "policy"];

/// `[slots.<slot>]`: the limits of one slot's calls.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotConfig {
    pub memory_bytes: Option<usize>,
    pub timeout_ms: Option<u64>,
}

/// `[admin]`: who may use the admin API (off without tokens).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub tokens: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Components {
    pub files: Option<PathBuf>,
    pub environments: Option<PathBuf>,
    pub terminals: Option<PathBuf>,
    /// The policy of tenants that do not name their own.
    pub policy: Option<PathBuf>,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:6767".parse().unwrap(),
            data_dir: PathBuf::from("./reshost-data"),
            cache_dir: None,
            limits: Limits::default(),
            slots: BTreeMap::new(),
            admin: Admin::default(),
            components: Components::default(),
            tenants: Vec::new(),
            templates: BTreeMap::new(),
            sandbox: Sandbox::default(),
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
        let c = &mut self.components;
        [
            &mut c.files,
            &mut c.environments,
            &mut c.terminals,
            &mut c.policy,
        ]
        .into_iter()
        .flatten()
        .for_each(fix);
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

    /// Checks what the types alone do not: files exist, names are unique, limits sane.
    pub fn validate(&self) -> anyhow::Result<()> {
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
            ("limits.read_cap_bytes", l.read_cap_bytes),
            ("limits.max_write_bytes", l.max_write_bytes as u64),
            ("limits.shell_output_bytes", l.shell_output_bytes as u64),
            (
                "limits.terminal_client_buffer_bytes",
                l.terminal_client_buffer_bytes as u64,
            ),
            (
                "limits.terminal_ping_interval_ms",
                l.terminal_ping_interval_ms,
            ),
            ("limits.max_component_bytes", l.max_component_bytes as u64),
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
        for (slot, limits) in &self.slots {
            if !SLOTS.contains(&slot.as_str()) {
                bail!("config key slots.{slot}: no such slot (slots: {SLOTS:?})");
            }
            if let Some(memory) = limits.memory_bytes
                && !(1 << 16..=l.component_memory_bytes).contains(&memory)
            {
                bail!(
                    "config key slots.{slot}.memory_bytes must be 65536 to limits.component_memory_bytes ({})",
                    l.component_memory_bytes
                );
            }
            if limits.timeout_ms == Some(0) {
                bail!("config key slots.{slot}.timeout_ms must be greater than 0");
            }
        }
        for token in &self.admin.tokens {
            if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                bail!("config key admin.tokens: a token must be non-empty, without spaces");
            }
            if self.tenants.iter().any(|t| t.tokens.contains(token)) {
                bail!("config key admin.tokens: a token is also a tenant's");
            }
        }
        let c = &self.components;
        for (slot, path) in [
            ("files", &c.files),
            ("environments", &c.environments),
            ("terminals", &c.terminals),
            ("policy", &c.policy),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                bail!(
                    "config key components.{slot}: no such file {}",
                    path.display()
                );
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
                if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    bail!(
                        "config key tenants[{i}].tokens: a token must be non-empty, without spaces"
                    );
                }
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
        }
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

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}
