//! A tenant policy with two rules from its `policy_config`:
//!
//! - `shell_allow`: the programs shell commands and background processes may
//!   run. Every simple command of the line (split at `;`, `&&`, `||`, `|`, `&`
//!   and newlines) must start with one of them; substitutions (`` ` ``, `$(`,
//!   `<(`, `>(`) are refused, since what they run cannot be known here.
//!   Absent: any command.
//! - `deny_paths`: globs (`**`, `{a,b}`) of environment paths no request may
//!   name: read, write, edit, delete, diff, search within, archive or extract
//!   into. Paths are normalized first, so `src/../.env` is `.env`. A delete,
//!   search, archive or extraction of a directory a pattern reaches into
//!   (`secrets` for `secrets/**`, and the root for any pattern) is refused too.
//!
//! ```toml
//! policy_config = { shell_allow = ["ls", "cat", "git", "python3"], deny_paths = ["**/.env", "secrets/**"] }
//! ```
//!
//! What a policy cannot see it cannot rule on: a symlink made by an allowed
//! program leads wherever it points, a search from the root still reads denied
//! files, and an allowed program can write any path it is given. Allow only
//! programs that cannot make links or write where they are told, and pair the
//! path rules with a handler that enforces them if content must stay hidden.
//! A `policy_config` that cannot be read denies everything (fail closed).

wit_bindgen::generate!({
    path: "../../wit",
    world: "policy",
});

use exports::reshost::api::decider::{Decision, Guest, Request};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rules {
    shell_allow: Option<Vec<String>>,
    #[serde(default)]
    deny_paths: Vec<String>,
}

/// Operations that run a command (`command` names it).
const COMMAND_OPERATIONS: &[&str] = &["environments.shell", "environments.processes.start"];

/// Operations whose `path` names an environment path.
const PATH_OPERATIONS: &[&str] = &[
    "environments.read",
    "environments.archive",
    "environments.extract",
    "environments.write",
    "environments.edit",
    "environments.delete",
    "environments.diff",
    "environments.snapshots.diff",
    "environments.search",
    "environments.grep",
];

/// The alternatives of a pattern's `{a,b}` groups, spelled out (groups do not nest).
fn expand(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else {
        return vec![pattern.to_owned()];
    };
    let Some(close) = pattern[open..].find('}').map(|i| open + i) else {
        return vec![pattern.to_owned()];
    };
    let rest = expand(&pattern[close + 1..]);
    pattern[open + 1..close]
        .split(',')
        .flat_map(|choice| {
            rest.iter()
                .map(move |tail| format!("{}{choice}{tail}", &pattern[..open]))
        })
        .collect()
}

/// Whether one path segment matches one pattern segment (`*`, `?`, literals).
fn segment_matches(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            segment_matches(&pattern[1..], name)
                || (!name.is_empty() && segment_matches(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => segment_matches(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => segment_matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// Whether the path's segments match the pattern's; `**` is any number of them.
fn segments_match(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.first() {
        None => path.is_empty(),
        Some(&"**") => (0..=path.len()).any(|skip| segments_match(&pattern[1..], &path[skip..])),
        Some(p) => {
            !path.is_empty()
                && segment_matches(p.as_bytes(), path[0].as_bytes())
                && segments_match(&pattern[1..], &path[1..])
        }
    }
}

/// Whether `path` matches the glob `pattern`: `*` and `?` within a segment, `**`
/// across segments, `{a,b}` alternatives. Hand-written rather than a glob crate:
/// a policy is instantiated for every request, and compiling globs into
/// automata each time would cost more than the whole check should.
fn glob_matches(pattern: &str, path: &str) -> bool {
    let path: Vec<&str> = path.split('/').collect();
    expand(pattern).iter().any(|p| {
        let pattern: Vec<&str> = p.split('/').collect();
        segments_match(&pattern, &path)
    })
}

/// The path with `.` and `..` resolved and no leading `/`; `None` when it climbs
/// above the root (the environment refuses such paths itself).
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// The programs a command line runs, or why they cannot be known.
fn programs(command: &str) -> Result<Vec<&str>, String> {
    if let Some(found) = ["`", "$(", "<(", ">("]
        .iter()
        .find(|s| command.contains(*s))
    {
        return Err(format!("command substitution ({found}) is not allowed"));
    }
    Ok(command
        .split(['\n', ';', '&', '|'])
        .filter_map(|simple| {
            // Skip leading `VAR=value` assignments and grouping.
            simple
                .split_whitespace()
                .map(|w| w.trim_start_matches(['(', '{', '!']))
                .find(|w| !w.is_empty() && !w.contains('='))
        })
        .collect())
}

fn decide(request: &Request, rules: &Rules) -> Result<(), String> {
    if COMMAND_OPERATIONS.contains(&request.operation.as_str())
        && let (Some(allowed), Some(command)) = (&rules.shell_allow, &request.command)
    {
        for program in programs(command)? {
            let name = program.rsplit('/').next().unwrap_or(program);
            if !allowed.iter().any(|a| a == name) {
                return Err(format!(
                    "{name} is not an allowed program (allowed: {})",
                    allowed.join(", ")
                ));
            }
        }
    }
    if PATH_OPERATIONS.contains(&request.operation.as_str())
        && let Some(path) = &request.path
        && let Some(path) = normalize(path)
    {
        if let Some(pattern) = rules.deny_paths.iter().find(|p| glob_matches(p, &path)) {
            return Err(format!("{path} is a protected path ({pattern})"));
        }
        // A recursive delete or a search reaches below the path: refuse it where a
        // pattern names something below (the root holds everything).
        let subtree = [
            "environments.delete",
            "environments.search",
            "environments.archive",
            "environments.extract",
            "environments.grep",
        ];
        if subtree.contains(&request.operation.as_str())
            && let Some(pattern) = rules
                .deny_paths
                .iter()
                .find(|p| path.is_empty() || p.starts_with(&format!("{path}/")))
        {
            let shown = if path.is_empty() { "/" } else { &path };
            return Err(format!("{shown} holds protected paths ({pattern})"));
        }
    }
    Ok(())
}

struct PathsAndPrograms;

impl Guest for PathsAndPrograms {
    fn decide(request: Request, config: String) -> Decision {
        let outcome = serde_json::from_str::<Rules>(&config)
            .map_err(|e| format!("the tenant's policy_config is invalid: {e}"))
            .and_then(|rules| decide(&request, &rules));
        match outcome {
            Ok(()) => Decision::Allow,
            Err(reason) => Decision::Deny(reason),
        }
    }
}

export!(PathsAndPrograms);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shells_do() {
        for (pattern, path, expected) in [
            ("**/.env", ".env", true),
            ("**/.env", "a/b/.env", true),
            ("**/.env", "a/.envrc", false),
            ("secrets/**", "secrets/key", true),
            ("secrets/**", "secrets/a/b", true),
            ("secrets/**", "secret/key", false),
            ("*.pem", "key.pem", true),
            ("*.pem", "dir/key.pem", false),
            ("**/*.{key,pem}", "a/b.key", true),
            ("**/*.{key,pem}", "a/b.crt", false),
            ("file?.txt", "file1.txt", true),
            ("file?.txt", "file12.txt", false),
        ] {
            assert_eq!(glob_matches(pattern, path), expected, "{pattern} {path}");
        }
    }

    #[test]
    fn paths_are_normalized_before_matching() {
        assert_eq!(normalize("src/../.env").as_deref(), Some(".env"));
        assert_eq!(normalize("/./a//b/").as_deref(), Some("a/b"));
        assert_eq!(normalize("../x"), None);
    }
}
