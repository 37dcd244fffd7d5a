//! The content search behind `reshost:api/tree.grep`: ripgrep's walker and
//! searcher over the session's workspace, bounded by the host's own limits.
//!
//! The walk lists directories by path (in parallel, never following symlinks);
//! every file is opened through a capability-scoped directory, so an entry swapped
//! for a link out of the workspace while the walk runs is refused, not read.

use crate::bindings::tree::{GrepMatch, GrepSpec, Grepped};
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use globset::{Glob, GlobSet, GlobSetBuilder};
use grep_matcher::Matcher;
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkMatch};
use ignore::{WalkBuilder, WalkState};
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The host's bounds on one grep (`[limits]`), whatever a component asks.
#[derive(Clone, Copy, Debug)]
pub struct GrepLimits {
    /// `limits.max_grep_matches`.
    pub max_matches: u32,
    /// `limits.max_grep_file_bytes`.
    pub max_file_bytes: u64,
    /// `limits.max_grep_context`.
    pub max_context: u32,
    /// `limits.max_grep_line_bytes`.
    pub max_line_bytes: u32,
}

/// Why a grep did not run: a message for the client.
#[derive(Debug, thiserror::Error)]
pub enum GrepError {
    #[error("pattern: {0}")]
    Pattern(#[from] grep_regex::Error),
    #[error("{param}: bad glob {glob:?}: {source}")]
    Glob {
        param: &'static str,
        glob: String,
        source: globset::Error,
    },
    #[error("{0}: {1}")]
    Globs(&'static str, globset::Error),
    #[error("the scope cannot be opened: {0}")]
    Scope(io::Error),
}

/// The ignore files that apply to a directory from the directories above it.
const IGNORE_FILES: &[&str] = &[".gitignore", ".ignore"];

/// The lines a grep keeps of one file.
struct FileMatches {
    path: String,
    matches: Vec<GrepMatch>,
}

/// What the walk's threads have found so far. Only the first `keep` matches by
/// (path, line) can be answered, so once that many are held, files sorting after
/// the last of them are not searched at all.
struct Collected {
    files: Vec<FileMatches>,
    held: usize,
    /// Files whose path sorts after this one cannot make the answer.
    cutoff: Option<String>,
}

impl Collected {
    fn add(&mut self, file: FileMatches, keep: usize) {
        self.held += file.matches.len();
        self.files.push(file);
        // Trim only now and then: each trim sorts what is held.
        if self.held < keep.saturating_mul(2) {
            return;
        }
        self.files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        let mut held = 0;
        let mut kept = 0;
        while kept < self.files.len() && held < keep {
            held += self.files[kept].matches.len();
            kept += 1;
        }
        self.files.truncate(kept);
        self.held = held;
        if held >= keep {
            self.cutoff = self.files.last().map(|f| f.path.clone());
        }
    }

    fn beyond_cutoff(&self, path: &str) -> bool {
        self.cutoff.as_deref().is_some_and(|c| path > c)
    }
}

/// The bounds of one grep, each the lower of what was asked and the host's limit.
#[derive(Clone, Copy)]
struct Bounds {
    /// One more than the answer holds, to tell `has_more`.
    keep: usize,
    context: usize,
    file_bytes: u64,
    line_bytes: usize,
    visited: u32,
}

fn glob_set(param: &'static str, globs: &[String]) -> Result<Option<GlobSet>, GrepError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        set.add(Glob::new(glob).map_err(|source| GrepError::Glob {
            param,
            glob: glob.to_owned(),
            source,
        })?);
    }
    set.build()
        .map(Some)
        .map_err(|e| GrepError::Globs(param, e))
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let text = text.trim_end_matches(['\n', '\r']);
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Collects one file's matching lines with their context. Every line the
/// searcher reports is handed to the matches still short of after-context, and
/// the last `context` lines are kept for the next match's before-context.
struct FileSink<'a> {
    matcher: &'a RegexMatcher,
    bounds: Bounds,
    path: &'a str,
    matches: Vec<GrepMatch>,
    /// The latest reported lines: (line number, text), at most `context`.
    recent: std::collections::VecDeque<(u64, String)>,
    binary: bool,
}

impl FileSink<'_> {
    fn line(&mut self, number: u64, bytes: &[u8]) {
        let context = self.bounds.context as u64;
        if context == 0 {
            return;
        }
        let text = cut(bytes, self.bounds.line_bytes);
        for m in self.matches.iter_mut().rev() {
            if number - m.line > context {
                break;
            }
            m.after.push(text.clone());
        }
        if self.recent.len() == self.bounds.context {
            self.recent.pop_front();
        }
        self.recent.push_back((number, text));
    }
}

impl Sink for FileSink<'_> {
    type Error = io::Error;

    fn matched(&mut self, _: &Searcher, found: &SinkMatch<'_>) -> io::Result<bool> {
        let line = found.line_number().unwrap_or(0);
        let bytes = found.bytes();
        let column = self
            .matcher
            .find(bytes)
            .ok()
            .flatten()
            .map_or(0, |m| m.start());
        let context = self.bounds.context as u64;
        let before = self
            .recent
            .iter()
            .filter(|(n, _)| line - n <= context)
            .map(|(_, t)| t.clone())
            .collect();
        self.line(line, bytes);
        self.matches.push(GrepMatch {
            path: self.path.to_owned(),
            line,
            column: column as u64 + 1,
            text: cut(bytes, self.bounds.line_bytes),
            before,
            after: Vec::new(),
        });
        Ok(self.matches.len() < self.bounds.keep)
    }

    fn context(&mut self, _: &Searcher, found: &SinkContext<'_>) -> io::Result<bool> {
        self.line(found.line_number().unwrap_or(0), found.bytes());
        Ok(true)
    }

    fn binary_data(&mut self, _: &Searcher, _: u64) -> io::Result<bool> {
        self.binary = true;
        Ok(false)
    }
}

/// What the walk's visitors share.
struct Shared<'a> {
    root: &'a Dir,
    workspace: &'a Path,
    scope: &'a str,
    shown_scope: &'a str,
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    bounds: Bounds,
    visited: AtomicU32,
    truncated: AtomicBool,
    collected: Mutex<Collected>,
}

impl Shared<'_> {
    /// Searches one walked file, if it is one the grep wants.
    fn visit(&self, entry: &ignore::DirEntry, matcher: &RegexMatcher, searcher: &mut Searcher) {
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            return;
        }
        // Names that are not UTF-8 cannot be addressed by the API: skipped.
        let Some(real) = entry
            .path()
            .strip_prefix(self.workspace)
            .ok()
            .and_then(Path::to_str)
        else {
            return;
        };
        let below = real
            .strip_prefix(self.scope)
            .unwrap_or(real)
            .trim_start_matches('/');
        let shown = match self.shown_scope {
            "" => below.to_owned(),
            scope => format!("{scope}/{below}"),
        };
        if self.include.as_ref().is_some_and(|g| !g.is_match(&shown))
            || self.exclude.as_ref().is_some_and(|g| g.is_match(&shown))
            || self.lock().beyond_cutoff(&shown)
        {
            return;
        }
        // Non-blocking, so that a file swapped for a FIFO cannot hold the thread.
        let mut options = OpenOptions::new();
        options.read(true).custom_flags(libc::O_NONBLOCK);
        let Ok(file) = self.root.open_with(real, &options) else {
            return;
        };
        let Ok(meta) = file.metadata() else { return };
        if !meta.is_file() || meta.len() > self.bounds.file_bytes {
            return;
        }
        let mut sink = FileSink {
            matcher,
            bounds: self.bounds,
            path: &shown,
            matches: Vec::new(),
            recent: Default::default(),
            binary: false,
        };
        let searched = searcher.search_file(matcher, &file.into_std(), &mut sink);
        if searched.is_err() || sink.binary || sink.matches.is_empty() {
            return;
        }
        let matches = sink.matches;
        self.lock().add(
            FileMatches {
                path: shown,
                matches,
            },
            self.bounds.keep,
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Collected> {
        // A visitor that panicked left nothing half-done worth refusing.
        self.collected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts an entry; false once the walk has visited all it may.
    fn count(&self) -> bool {
        if self.visited.fetch_add(1, Ordering::Relaxed) >= self.bounds.visited {
            self.truncated.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }
}

fn matcher(spec: &GrepSpec) -> Result<RegexMatcher, GrepError> {
    Ok(RegexMatcherBuilder::new()
        .fixed_strings(!spec.regex)
        .case_insensitive(!spec.case_sensitive)
        // Lines are what is searched: a match never spans one, which lets the
        // searcher look for candidate lines fast, as ripgrep does.
        .line_terminator(Some(b'\n'))
        .build(&spec.pattern)?)
}

fn walker(workspace: &Path, spec: &GrepSpec) -> WalkBuilder {
    let mut walk = if spec.scope.is_empty() {
        WalkBuilder::new(workspace)
    } else {
        WalkBuilder::new(workspace.join(&spec.scope))
    };
    walk.hidden(!spec.hidden)
        .ignore(spec.ignore_rules)
        .git_ignore(spec.ignore_rules)
        .git_exclude(spec.ignore_rules)
        // Ignore files above the workspace are the host's, never the session's:
        // those between the root and the scope are added one by one below.
        .parents(false)
        .git_global(false)
        // A workspace need not be a git repository for its `.gitignore` to count.
        .require_git(false)
        .follow_links(false);
    if spec.ignore_rules && !spec.scope.is_empty() {
        let mut dir = workspace.to_path_buf();
        let mut add = |dir: &Path| {
            for name in IGNORE_FILES {
                let file = dir.join(name);
                if file.is_file() {
                    // An unreadable or malformed ignore file is no reason to refuse.
                    let _ = walk.add_ignore(file);
                }
            }
        };
        add(&dir);
        let ancestors: Vec<&str> = spec.scope.split('/').collect();
        for part in &ancestors[..ancestors.len() - 1] {
            dir.push(part);
            add(&dir);
        }
        let exclude = workspace.join(".git/info/exclude");
        if exclude.is_file() {
            let _ = walk.add_ignore(exclude);
        }
    }
    walk
}

/// Runs `spec` over `workspace`, within `limits`, visiting at most `max_visited`
/// entries (`limits.max_find_visited`).
pub fn grep(
    workspace: &Path,
    spec: &GrepSpec,
    max_visited: u32,
    limits: GrepLimits,
) -> Result<Grepped, GrepError> {
    let matcher = matcher(spec)?;
    let include = glob_set("include", &spec.include)?;
    let exclude = glob_set("exclude", &spec.exclude)?;
    let root =
        Dir::open_ambient_dir(workspace, cap_std::ambient_authority()).map_err(GrepError::Scope)?;
    let max_matches = spec.max_matches.min(limits.max_matches) as usize;
    let context = spec.context.min(limits.max_context) as usize;
    let bounds = Bounds {
        keep: max_matches + 1,
        context,
        file_bytes: spec.max_file_bytes.min(limits.max_file_bytes),
        line_bytes: limits.max_line_bytes as usize,
        visited: spec.max_visited.min(max_visited),
    };
    let mut searcher = SearcherBuilder::new();
    searcher
        .line_number(true)
        // Files holding a NUL byte are binary: dropped, whatever matched before it.
        .binary_detection(BinaryDetection::quit(0))
        .before_context(context)
        .after_context(context);
    let shared = Shared {
        root: &root,
        workspace,
        scope: &spec.scope,
        shown_scope: &spec.shown_scope,
        include,
        exclude,
        bounds,
        visited: AtomicU32::new(0),
        truncated: AtomicBool::new(false),
        collected: Mutex::new(Collected {
            files: Vec::new(),
            held: 0,
            cutoff: None,
        }),
    };
    // Memory maps are left off, as ripgrep does for a walk of many files, and
    // because a file truncated while mapped would kill the server (SIGBUS).
    walker(workspace, spec).build_parallel().run(|| {
        let (shared, matcher, mut searcher) = (&shared, matcher.clone(), searcher.build());
        Box::new(move |entry| {
            let Ok(entry) = entry else {
                return WalkState::Continue;
            };
            if !shared.count() {
                return WalkState::Quit;
            }
            shared.visit(&entry, &matcher, &mut searcher);
            WalkState::Continue
        })
    });
    let truncated = shared.truncated.load(Ordering::Relaxed);
    let mut files = shared.lock().files.drain(..).collect::<Vec<_>>();
    files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    let mut matches: Vec<GrepMatch> = files.into_iter().flat_map(|f| f.matches).collect();
    let has_more = matches.len() > max_matches;
    matches.truncate(max_matches);
    Ok(Grepped {
        matches,
        has_more,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_line_ends_on_a_character_boundary_without_its_terminator() {
        assert_eq!(cut("héllo\r\n".as_bytes(), 100), "héllo");
        assert_eq!(cut("héllo".as_bytes(), 2), "h");
        assert_eq!(cut(b"ab\xffcd\n", 100), "ab\u{fffd}cd");
    }
}
