//! The deployment artefacts, checked offline: the Kubernetes manifests of
//! `deploy/kubernetes/` against the Kubernetes API's schemas
//! ([kubernetes-validate](https://pypi.org/project/kubernetes-validate/), which
//! bundles them), the facts the runners depend on (probes, user, names, drain,
//! volume, the sandbox's needs), the shipped `reshost.toml` against the server's
//! own config loader, the HAProxy config the proxy generates from it, and the
//! shape of the `Dockerfile`. No cluster and no container engine is needed.
//!
//! kubernetes-validate is looked for in `$RESHOST_KUBERNETES_VALIDATE`, then
//! `target/tools/kubernetes-validate/bin/` (where `.ci/run` installs it), then
//! on `PATH`; without it these tests fail and say how to install it. Its Python
//! (which has PyYAML) reads the manifests for the other tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on anything it does not expect"
)]

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The version `.ci/run` installs (its schemas go up to Kubernetes 1.37).
const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate lies in the repository")
        .to_path_buf()
}

fn kube_dir() -> PathBuf {
    repo().join("deploy/kubernetes")
}

/// The manifests: every YAML file of `deploy/kubernetes/` but the kustomization.
fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(kube_dir())
        .expect("deploy/kubernetes exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no manifests in {}",
        kube_dir().display()
    );
    files
}

fn install_hint() -> String {
    format!(
        "install it with\n\n    python3 -m venv target/tools/kubernetes-validate && \
         target/tools/kubernetes-validate/bin/pip install kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}\n\n\
         (from the repository's root, as .ci/run does), or point RESHOST_KUBERNETES_VALIDATE at \
         its executable"
    )
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// kubernetes-validate's executable: never skipped, its absence is a failure.
fn kubernetes_validate() -> PathBuf {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| {
        if let Some(path) = std::env::var_os("RESHOST_KUBERNETES_VALIDATE") {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "RESHOST_KUBERNETES_VALIDATE={} is not a file; {}",
                path.display(),
                install_hint()
            );
            return path;
        }
        let local = repo().join("target/tools/kubernetes-validate/bin/kubernetes-validate");
        if local.is_file() {
            return local;
        }
        on_path("kubernetes-validate")
            .unwrap_or_else(|| panic!("kubernetes-validate is not installed: {}", install_hint()))
    })
    .clone()
}

/// The Python kubernetes-validate runs with, which has PyYAML (one of its
/// dependencies): the venv's own, else the one its launcher names.
fn yaml_python() -> PathBuf {
    // Through a symlink (pipx's, say) to the venv's own launcher.
    let tool = kubernetes_validate();
    let tool = tool.canonicalize().unwrap_or(tool);
    let dir = tool.parent().unwrap_or(Path::new("."));
    if let Some(python) = ["python3", "python"]
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
    {
        return python;
    }
    let launcher = std::fs::read_to_string(&tool).unwrap_or_default();
    let mut lines = launcher.lines();
    let shebang = lines
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .unwrap_or("");
    let mut words = shebang.split_whitespace();
    match words.next() {
        // pip's launcher for long paths: `#!/bin/sh` then `'''exec' "PYTHON" "$0" "$@"`.
        Some("/bin/sh") => lines
            .next()
            .and_then(|l| l.strip_prefix("'''exec' \""))
            .and_then(|l| l.split('"').next())
            .map_or_else(|| PathBuf::from("python3"), PathBuf::from),
        Some(env) if env.ends_with("/env") => PathBuf::from(words.next().unwrap_or("python3")),
        Some(python) => PathBuf::from(python),
        None => PathBuf::from("python3"),
    }
}

fn run(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin)
        .expect("writing stdin");
    child.wait_with_output().expect("waiting for the command")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const YAML_TO_JSON: &str = "import json, sys, yaml\n\
     print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d is not None]))";

/// The documents of a YAML stream, as JSON values.
fn yaml_documents(yaml: &str) -> Vec<Value> {
    let python = yaml_python();
    let out = run(
        Command::new(&python).args(["-c", YAML_TO_JSON]),
        yaml.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{} could not read the YAML (has it PyYAML?): {}",
        python.display(),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the converter prints JSON")
}

/// Every manifest's documents.
fn manifests() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let all: Vec<String> = manifest_files()
            .iter()
            .map(|f| std::fs::read_to_string(f).expect("reading a manifest"))
            .collect();
        yaml_documents(&all.join("\n---\n"))
    })
}

fn kustomization() -> Value {
    let text = std::fs::read_to_string(kube_dir().join("kustomization.yaml"))
        .expect("reading kustomization.yaml");
    yaml_documents(&text).remove(0)
}

/// The one resource of `kind` among the manifests.
fn only(kind: &str) -> &'static Value {
    let found: Vec<&Value> = manifests().iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind} in the manifests"
    );
    found[0]
}

fn runners() -> &'static Value {
    only("StatefulSet")
}

fn proxy() -> &'static Value {
    only("Deployment")
}

/// The one container of a workload's pods.
fn container(workload: &Value) -> &Value {
    let containers = workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container per pod");
    &containers[0]
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} should be a string, is {value}"))
}

/// The port a probe or service names (by number or by the container's port name).
fn port_number(container: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = str_of(port, "a port");
    container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("the container has no port named {name}"))
}

/// A setting of the container's securityContext, else of its pod's.
fn security<'a>(workload: &'a Value, container: &'a Value, key: &str) -> &'a Value {
    match &container["securityContext"][key] {
        Value::Null => &workload["spec"]["template"]["spec"]["securityContext"][key],
        set => set,
    }
}

/// The shipped config, as TOML (facts read here whatever the server's `Config`
/// type looks like; `the_shipped_config_loads_and_validates` loads it for real).
fn shipped_config_path() -> PathBuf {
    kube_dir().join("reshost.toml")
}

fn shipped_toml() -> toml::Table {
    let text = std::fs::read_to_string(shipped_config_path()).expect("reading reshost.toml");
    text.parse().expect("reshost.toml is TOML")
}

fn toml_u64(table: &toml::Table, section: &str, key: &str) -> Option<u64> {
    let value = table.get(section)?.get(key)?;
    Some(
        value
            .as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or_else(|| panic!("{section}.{key} should be a count, is {value}")),
    )
}

fn shipped_listen() -> SocketAddr {
    let config = shipped_toml();
    let listen = config
        .get("listen")
        .and_then(|l| l.as_str())
        .expect("reshost.toml sets listen");
    listen.parse().expect("listen is an address")
}

/// `[cluster.runners]`: name → URL.
fn shipped_runners() -> Vec<(String, String)> {
    let config = shipped_toml();
    let runners = config
        .get("cluster")
        .and_then(|c| c.get("runners"))
        .and_then(|r| r.as_table())
        .expect("reshost.toml has [cluster.runners]");
    runners
        .iter()
        .map(|(name, url)| (name.clone(), url.as_str().expect("a URL").to_owned()))
        .collect()
}

/// Runs kubernetes-validate --strict on `files`; every document of each must
/// have been checked against a schema and passed.
fn validate_strictly(files: &[PathBuf]) {
    let tool = kubernetes_validate();
    let out = run(Command::new(&tool).arg("--strict").args(files), b"");
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "kubernetes-validate --strict refused:\n{report}"
    );
    // An unknown kind or apiVersion is only a warning ("Couldn't find schema").
    let warnings: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("WARN") || l.starts_with("ERROR"))
        .collect();
    assert!(warnings.is_empty(), "kubernetes-validate warned:\n{report}");
    for file in files {
        assert!(
            report
                .lines()
                .any(|l| l.contains(&*file.to_string_lossy()) && l.contains("passed")),
            "kubernetes-validate checked nothing in {}:\n{report}",
            file.display()
        );
    }
}

#[test]
fn every_manifest_validates_offline_against_the_kubernetes_schemas() {
    validate_strictly(&manifest_files());
}

#[test]
fn the_kustomize_output_validates_and_mounts_the_generated_config_secret() {
    let Some(kubectl) = on_path("kubectl") else {
        eprintln!("kubectl is not on PATH: the kustomize output is not checked");
        return;
    };
    let out = run(Command::new(kubectl).arg("kustomize").arg(kube_dir()), b"");
    assert!(
        out.status.success(),
        "kubectl kustomize failed: {}",
        text(&out.stderr)
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let rendered = dir.path().join("rendered.yaml");
    std::fs::write(&rendered, &out.stdout).expect("writing the output");
    validate_strictly(std::slice::from_ref(&rendered));

    let docs = yaml_documents(&text(&out.stdout));
    let secrets: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "Secret")
        .map(|d| str_of(&d["metadata"]["name"], "a name"))
        .collect();
    let generated = secrets
        .iter()
        .find(|s| s.starts_with("reshost-config"))
        .expect("the config Secret is generated");
    let config = std::fs::read_to_string(shipped_config_path()).expect("reshost.toml");
    let secret = docs
        .iter()
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == *generated)
        .expect("the Secret");
    let held = str_of(&secret["data"]["reshost.toml"], "the Secret's reshost.toml");
    use base64::Engine as _;
    let held = base64::engine::general_purpose::STANDARD
        .decode(held.split_whitespace().collect::<String>())
        .expect("base64");
    assert_eq!(
        text(&held),
        config,
        "the Secret holds reshost.toml as shipped"
    );
    for workload in docs.iter().filter(|d| d["spec"]["template"].is_object()) {
        for volume in workload["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(name) = volume["secret"]["secretName"].as_str() {
                assert!(
                    secrets.contains(name),
                    "{} mounts the Secret {name}, which the output does not hold",
                    workload["metadata"]["name"]
                );
            }
        }
    }
    for doc in &docs {
        if doc["kind"] != "Namespace" {
            assert_eq!(doc["metadata"]["namespace"], "reshost", "{}", doc["kind"]);
        }
    }
}

#[test]
fn kustomization_lists_every_manifest() {
    let listed: BTreeSet<String> = kustomization()["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| str_of(r, "a resource").to_owned())
        .collect();
    let present: BTreeSet<String> = manifest_files()
        .iter()
        .map(|f| {
            f.file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(listed, present, "kustomization.yaml's resources");
}

#[test]
fn runners_are_ready_only_while_healthz_answers_ok() {
    let c = container(runners());
    let port = shipped_listen().port();
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], "/healthz", "{probe} asks /healthz");
        assert_eq!(
            port_number(c, &get["port"]),
            u64::from(port),
            "{probe} asks the port reshost.toml listens on"
        );
    }
}

#[test]
fn runners_run_as_a_non_root_user_without_capabilities() {
    let sts = runners();
    let c = container(sts);
    assert_eq!(security(sts, c, "runAsNonRoot"), true, "runAsNonRoot");
    let uid = security(sts, c, "runAsUser")
        .as_u64()
        .expect("runAsUser is set");
    assert_ne!(uid, 0, "runAsUser");
    assert_eq!(security(sts, c, "allowPrivilegeEscalation"), false);
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    assert!(
        c["securityContext"]["capabilities"]["add"].is_null(),
        "the sandbox needs no capability from outside"
    );
    assert_ne!(c["securityContext"]["privileged"], true);
}

/// What `docs/security.md` says an unprivileged server's sandbox needs, in a
/// pod: without one of these the server refuses to start (`enforce`).
#[test]
fn runner_pods_let_the_sandbox_make_its_namespaces_and_mounts() {
    let sts = runners();
    let c = container(sts);
    let pod = &sts["spec"]["template"]["spec"];
    assert_eq!(pod["hostUsers"], false, "a user namespace of the pod's own");
    assert_eq!(
        c["securityContext"]["procMount"], "Unmasked",
        "a /proc the sandbox's PID namespace may mount its own over"
    );
    assert_eq!(
        security(sts, c, "seccompProfile")["type"],
        "Unconfined",
        "the runtime's default seccomp profile refuses unshare(2) and mount(2)"
    );
    assert_eq!(
        security(sts, c, "appArmorProfile")["type"],
        "Unconfined",
        "the runtime's default AppArmor profile refuses mounts"
    );
    let namespace = only("Namespace");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged",
        "the namespace admits such pods"
    );
}

#[test]
fn each_runner_takes_its_name_from_its_pod() {
    let c = container(runners());
    let env = c["env"].as_array().expect("env");
    let runner = env
        .iter()
        .find(|e| e["name"] == "RESHOST_RUNNER")
        .expect("RESHOST_RUNNER is set");
    assert_eq!(
        runner["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name",
        "RESHOST_RUNNER comes from the pod's name"
    );
}

#[test]
fn termination_grace_outlasts_the_drain_and_the_shutdown_grace() {
    let config = shipped_toml();
    let drain_ms = toml_u64(&config, "cluster", "drain_ms").expect("cluster.drain_ms is set");
    assert!(drain_ms > 0, "the runners drain");
    let grace_ms = toml_u64(&config, "limits", "shutdown_grace_ms")
        .unwrap_or(reshost::config::Config::default().limits.shutdown_grace_ms);
    let seconds = runners()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds is set");
    assert!(
        seconds * 1000 > drain_ms + grace_ms,
        "terminationGracePeriodSeconds {seconds} s must outlast drain_ms {drain_ms} + shutdown_grace_ms {grace_ms}"
    );
}

#[test]
fn each_runner_keeps_its_data_on_a_volume_of_its_own_at_the_data_dir() {
    let sts = runners();
    let config = shipped_toml();
    let data_dir = config
        .get("data_dir")
        .and_then(|d| d.as_str())
        .expect("reshost.toml sets data_dir");
    let claims: Vec<&str> = sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .expect("volumeClaimTemplates")
        .iter()
        .map(|t| str_of(&t["metadata"]["name"], "a claim's name"))
        .collect();
    let mount = container(sts)["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["mountPath"] == data_dir)
        .unwrap_or_else(|| panic!("nothing is mounted at data_dir {data_dir}"));
    let name = str_of(&mount["name"], "a mount's volume");
    assert!(
        claims.contains(&name),
        "data_dir {data_dir} is the volume {name}, not one of the claim templates {claims:?}"
    );
    assert!(mount["subPath"].is_null() && mount["readOnly"] != true);
}

#[test]
fn the_runner_service_is_headless_and_publishes_draining_runners() {
    let sts = runners();
    let name = &sts["spec"]["serviceName"];
    let service = manifests()
        .iter()
        .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == *name)
        .unwrap_or_else(|| panic!("no Service {name}, the StatefulSet's serviceName"));
    assert_eq!(service["spec"]["clusterIP"], "None", "headless");
    assert_eq!(
        service["spec"]["publishNotReadyAddresses"], true,
        "a draining runner keeps its name"
    );
    let labels = &sts["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().expect("a selector") {
        assert_eq!(
            &labels[key], value,
            "the Service selects the runners ({key})"
        );
    }
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
    let pdb = manifests()
        .iter()
        .find(|d| {
            d["kind"] == "PodDisruptionBudget"
                && d["spec"]["selector"]["matchLabels"]
                    .as_object()
                    .is_some_and(|m| m.iter().all(|(k, v)| &labels[k] == v))
        })
        .expect("a PodDisruptionBudget covers the runners");
    assert!(pdb["spec"]["maxUnavailable"].is_number() || pdb["spec"]["minAvailable"].is_number());
}

/// The Secret volume a container mounts the config from, and where.
fn config_mount(workload: &Value, container: &Value) -> (String, String) {
    let generated = kustomization()["secretGenerator"]
        .as_array()
        .expect("secretGenerator")
        .iter()
        .find(|g| {
            g["files"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == "reshost.toml"))
        })
        .map(|g| str_of(&g["name"], "a generator's name").to_owned())
        .expect("kustomization.yaml makes reshost.toml a Secret");
    let volume = workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["secret"]["secretName"] == generated.as_str())
        .unwrap_or_else(|| panic!("no volume of the Secret {generated}"));
    let mount = container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the config volume is mounted");
    assert_eq!(mount["readOnly"], true, "the config is mounted read-only");
    let path = str_of(&mount["mountPath"], "a mount path");
    (generated, format!("{path}/reshost.toml"))
}

#[test]
fn the_runners_read_the_shipped_config_from_its_secret() {
    let sts = runners();
    let c = container(sts);
    let (_, path) = config_mount(sts, c);
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| str_of(a, "an argument"))
        .collect();
    assert_eq!(args, ["serve", "--config", path.as_str()]);
    let mode = sts["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find_map(|v| v["secret"]["defaultMode"].as_u64())
        .expect("the config's mode is set");
    assert_eq!(mode & 0o007, 0, "other users may not read the tokens");
}

#[test]
fn the_shipped_config_loads_and_validates() {
    let config = reshost::config::Config::load(&shipped_config_path())
        .unwrap_or_else(|e| panic!("reshost.toml: {e:#}"));
    config
        .validate()
        .unwrap_or_else(|e| panic!("reshost.toml: {e:#}"));
    assert_eq!(config.listen, shipped_listen());
}

#[test]
fn the_configured_runners_are_the_statefulsets_pods() {
    let sts = runners();
    let name = str_of(&sts["metadata"]["name"], "the StatefulSet's name");
    let namespace = str_of(&sts["metadata"]["namespace"], "its namespace");
    let service = str_of(&sts["spec"]["serviceName"], "its serviceName");
    let replicas = sts["spec"]["replicas"].as_u64().expect("replicas is set");
    let port = port_number(container(sts), &Value::from("http"));
    let pods: Vec<(String, String)> = (0..replicas)
        .map(|i| {
            let pod = format!("{name}-{i}");
            let url = format!("http://{pod}.{service}.{namespace}.svc.cluster.local:{port}");
            (pod, url)
        })
        .collect();
    assert_eq!(
        shipped_runners(),
        pods,
        "[cluster.runners] must name each of the {replicas} pods at its DNS name"
    );
    assert_eq!(
        u64::from(shipped_listen().port()),
        port,
        "the runners listen where the pods' port is"
    );
}

/// The init container's shell command, split into words.
fn proxy_config_command() -> Vec<String> {
    let init = proxy()["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .expect("initContainers");
    assert_eq!(init.len(), 1, "one init container generates haproxy.cfg");
    let command: Vec<&str> = init[0]["command"]
        .as_array()
        .expect("command")
        .iter()
        .map(|a| str_of(a, "an argument"))
        .collect();
    assert_eq!(&command[..2], ["/bin/sh", "-c"]);
    command[2].split_whitespace().map(str::to_owned).collect()
}

fn word_after<'a>(words: &'a [String], flag: &str) -> &'a str {
    let at = words
        .iter()
        .position(|w| w == flag)
        .unwrap_or_else(|| panic!("{flag} is missing from {words:?}"));
    &words[at + 1]
}

#[test]
fn the_proxy_serves_the_haproxy_config_its_init_container_generates() {
    let deploy = proxy();
    let init = &deploy["spec"]["template"]["spec"]["initContainers"][0];
    let words = proxy_config_command();
    assert_eq!(&words[..3], ["reshost", "cluster", "proxy-config"]);
    let (_, config) = config_mount(deploy, init);
    assert_eq!(word_after(&words, "--config"), config);
    let listen: SocketAddr = word_after(&words, "--listen").parse().expect("an address");
    // What it writes, then renames into place.
    let written = word_after(&words, ">");
    let file = words.last().expect("the rename's target");
    assert_eq!(word_after(&words, "mv"), written);

    let haproxy = container(deploy);
    assert!(
        str_of(&haproxy["image"], "an image").starts_with("haproxy:2.6"),
        "the official HAProxy 2.6 image"
    );
    let args: Vec<&str> = haproxy["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| str_of(a, "an argument"))
        .collect();
    assert_eq!(args, ["haproxy", "-f", file.as_str()]);
    let mount_of = |c: &Value| {
        c["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .find(|m| file.starts_with(str_of(&m["mountPath"], "a path")))
            .map(|m| m["name"].clone())
            .unwrap_or_else(|| panic!("{file} is on no volume of {}", c["name"]))
    };
    assert_eq!(mount_of(init), mount_of(haproxy), "one volume passes it on");
    let port = port_number(haproxy, &haproxy["readinessProbe"]["tcpSocket"]["port"]);
    assert_eq!(port, u64::from(listen.port()), "ready when HAProxy listens");
    let service = manifests()
        .iter()
        .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == deploy["metadata"]["name"])
        .expect("the proxy's Service");
    let target = &service["spec"]["ports"][0]["targetPort"];
    assert_eq!(
        port_number(haproxy, target),
        port,
        "the Service reaches HAProxy"
    );
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(security(deploy, haproxy, "runAsNonRoot"), true);
    assert_ne!(security(deploy, haproxy, "runAsUser"), 0);
}

#[test]
fn the_haproxy_config_generated_from_the_shipped_config_is_valid() {
    let words = proxy_config_command();
    let listen = word_after(&words, "--listen");
    let out = Command::new(env!("CARGO_BIN_EXE_reshost"))
        .args(["cluster", "proxy-config", "--config"])
        .arg(shipped_config_path())
        .args(["--listen", listen])
        .env_remove("RESHOST_RUNNER")
        .output()
        .expect("running reshost");
    assert!(
        out.status.success(),
        "reshost cluster proxy-config failed: {}",
        text(&out.stderr)
    );
    let cfg = text(&out.stdout);
    for (name, _) in shipped_runners() {
        assert!(cfg.contains(&name), "the routes name {name}:\n{cfg}");
    }
    let haproxy = haproxy();
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("haproxy.cfg");
    std::fs::write(&file, &cfg).expect("writing haproxy.cfg");
    let check = Command::new(haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&file)
        .output()
        .expect("running haproxy -c");
    assert!(
        check.status.success(),
        "haproxy -c refused the generated config:\n{}{}\n{cfg}",
        text(&check.stdout),
        text(&check.stderr)
    );
}

/// HAProxy: `$RESHOST_HAPROXY`, else `haproxy` on the PATH or in /usr/sbin
/// (Debian's package; `.ci/run` installs it), as the cluster tests find it.
fn haproxy() -> PathBuf {
    if let Some(path) = std::env::var_os("RESHOST_HAPROXY") {
        return PathBuf::from(path);
    }
    on_path("haproxy")
        .or_else(|| Some(PathBuf::from("/usr/sbin/haproxy")).filter(|p| p.is_file()))
        .expect("HAProxy is not installed: apt-get install haproxy (.ci/run does), or set RESHOST_HAPROXY")
}

/// One Dockerfile instruction: its keyword (upper case) and the rest.
struct Instruction {
    keyword: String,
    rest: String,
}

fn dockerfile() -> Vec<Instruction> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("reading Dockerfile");
    let mut instructions = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (keyword, rest) = pending
                    .split_once(char::is_whitespace)
                    .unwrap_or((&pending, ""));
                instructions.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    rest: rest.trim().to_owned(),
                });
                pending.clear();
            }
        }
    }
    instructions
}

#[test]
fn the_dockerfile_is_multi_stage_and_runs_a_release_build_as_a_non_root_user() {
    let instructions = dockerfile();
    let stages: Vec<&[Instruction]> = {
        let starts: Vec<usize> = instructions
            .iter()
            .enumerate()
            .filter(|(_, i)| i.keyword == "FROM")
            .map(|(n, _)| n)
            .collect();
        assert!(
            starts.len() >= 2,
            "a multi-stage build ({} FROM)",
            starts.len()
        );
        assert_eq!(starts[0], 0, "the Dockerfile starts with FROM");
        starts
            .iter()
            .enumerate()
            .map(|(k, &at)| {
                &instructions[at..starts.get(k + 1).copied().unwrap_or(instructions.len())]
            })
            .collect()
    };
    // The stage that builds reshost: a release build of its binary.
    let (build, build_stage) = stages
        .iter()
        .enumerate()
        .find(|(_, s)| {
            s.iter().any(|i| {
                let words: Vec<&str> = i.rest.split_whitespace().collect();
                i.keyword == "RUN"
                    && words.windows(2).any(|w| w == ["cargo", "build"])
                    && words.contains(&"--release")
                    && words.windows(2).any(|w| w == ["--bin", "reshost"])
            })
        })
        .expect("a stage runs `cargo build --release ... --bin reshost`");
    let final_stage = stages.last().expect("a stage");
    assert_ne!(
        build,
        stages.len() - 1,
        "the build stage is not the final one"
    );
    let build_name = build_stage[0]
        .rest
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[0].eq_ignore_ascii_case("AS"))
        .map(|w| w[1].to_owned())
        .expect("the build stage is named");
    assert!(
        final_stage.iter().any(|i| i.keyword == "COPY"
            && i.rest.contains(&format!("--from={build_name}"))
            && i.rest.contains("reshost")),
        "the final stage copies the binary from {build_name}"
    );
    let user = final_stage
        .iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .map(|i| i.rest.clone())
        .expect("the final stage sets USER");
    let name = user.split(':').next().unwrap_or_default();
    assert!(
        !name.is_empty() && name != "root" && name != "0",
        "the final stage runs as {user:?}, root"
    );
    let expose: Vec<&str> = final_stage
        .iter()
        .filter(|i| i.keyword == "EXPOSE")
        .map(|i| i.rest.as_str())
        .collect();
    assert_eq!(
        expose,
        [shipped_listen().port().to_string()],
        "EXPOSE names the port the runners listen on"
    );
    let entrypoint = final_stage
        .iter()
        .rev()
        .find(|i| i.keyword == "ENTRYPOINT")
        .expect("an ENTRYPOINT");
    // tini as PID 1 reaps orphans and forwards SIGTERM to reshost.
    assert_eq!(entrypoint.rest, r#"["/usr/bin/tini", "--", "reshost"]"#);
}
