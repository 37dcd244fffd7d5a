//! The route table: every route of the API, as a method, a path template and
//! the `Route` that serves it. The router reaches a handler only through this
//! table, metrics name requests by its templates, and a test checks it against
//! `docs/openapi.json` both ways, so the published contract cannot drift from
//! what is served.
//!
//! A template's `{name}` segment matches any one segment; a last segment
//! `{path}` matches one or more (joined with `/`: a workspace path).

use super::error::{ApiError, ApiResult};
use http::Method;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Healthz,
    RunnerSessions,
    OpenApi,
    Metrics,
    Console,
    ConsoleAsset,
    ListSessions,
    CreateSession,
    GetSession,
    DeleteSession,
    ListResources,
    GetResource,
    ListFiles,
    UploadFile,
    GetFile,
    DeleteFile,
    GetFileContent,
    ListEnvironments,
    GetEnvironment,
    Search,
    Grep,
    Shell,
    Changes,
    FileEvents,
    Diff,
    ListProcesses,
    StartProcess,
    GetProcess,
    DeleteProcess,
    ProcessStdin,
    SignalProcess,
    ProcessOutput,
    ProcessEvents,
    ListSnapshots,
    CreateSnapshot,
    GetSnapshot,
    DeleteSnapshot,
    RestoreSnapshot,
    SnapshotChanges,
    SnapshotDiff,
    ReadPath,
    WritePath,
    EditPath,
    DeletePath,
    ExtractPath,
    ListTerminals,
    LaunchTerminal,
    GetTerminal,
    CloseTerminal,
    TransferTerminal,
    AttachTerminal,
    ListSlots,
    GetSlot,
    PutSlot,
    RollbackSlot,
    PutSlotLimits,
    GetTenantPolicy,
    PutTenantPolicy,
    GetTenantUsage,
    GetSandbox,
}

macro_rules! table {
    ($($method:ident $template:expr => $route:ident,)*) => {
        /// Every route: method, path template, route. A path is matched by the
        /// first template that fits it (so `…/resources/files` comes before
        /// `…/resources/{resource_id}`); its other methods are then `405`.
        pub const TABLE: &[(&str, &str, Route)] = &[
            $((stringify!($method), $template, Route::$route),)*
        ];
    };
}

table! {
    GET "/healthz" => Healthz,
    HEAD "/healthz" => Healthz,
    GET "/openapi.json" => OpenApi,
    GET "/metrics" => Metrics,
    GET "/" => Console,
    HEAD "/" => Console,
    GET "/console/{path}" => ConsoleAsset,
    HEAD "/console/{path}" => ConsoleAsset,
    GET "/v1/sessions" => ListSessions,
    GET "/v1/runner/sessions" => RunnerSessions,
    POST "/v1/sessions" => CreateSession,
    GET "/v1/sessions/{session_id}" => GetSession,
    DELETE "/v1/sessions/{session_id}" => DeleteSession,
    GET "/v1/sessions/{session_id}/resources" => ListResources,
    GET "/v1/sessions/{session_id}/resources/files" => ListFiles,
    POST "/v1/sessions/{session_id}/resources/files" => UploadFile,
    GET "/v1/sessions/{session_id}/resources/files/{file_id}" => GetFile,
    DELETE "/v1/sessions/{session_id}/resources/files/{file_id}" => DeleteFile,
    GET "/v1/sessions/{session_id}/resources/files/{file_id}/content" => GetFileContent,
    GET "/v1/sessions/{session_id}/resources/environments" => ListEnvironments,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}" => GetEnvironment,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/search" => Search,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/grep" => Grep,
    POST "/v1/sessions/{session_id}/resources/environments/{env_id}/shell" => Shell,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/changes" => Changes,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/events" => FileEvents,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/diff/{path}" => Diff,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/processes" => ListProcesses,
    POST "/v1/sessions/{session_id}/resources/environments/{env_id}/processes" => StartProcess,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/processes/{process_id}" => GetProcess,
    DELETE "/v1/sessions/{session_id}/resources/environments/{env_id}/processes/{process_id}" => DeleteProcess,
    POST "/v1/sessions/{session_id}/resources/environments/{env_id}/processes/{process_id}/stdin" => ProcessStdin,
    POST "/v1/sessions/{session_id}/resources/environments/{env_id}/processes/{process_id}/signal" => SignalProcess,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/processes/{process_id}/output" => ProcessOutput,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/processes/{process_id}/events" => ProcessEvents,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/snapshots" => ListSnapshots,
    POST "/v1/sessions/{session_id}/resources/environments/{env_id}/snapshots" => CreateSnapshot,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/snapshots/{snapshot_id}" => GetSnapshot,
    DELETE "/v1/sessions/{session_id}/resources/environments/{env_id}/snapshots/{snapshot_id}" => DeleteSnapshot,
    POST "/v1/sessions/{session_id}/resources/environments/{env_id}/snapshots/{snapshot_id}/restore" => RestoreSnapshot,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/snapshots/{snapshot_id}/changes" => SnapshotChanges,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/snapshots/{snapshot_id}/diff/{path}" => SnapshotDiff,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/filesystem" => ReadPath,
    PUT "/v1/sessions/{session_id}/resources/environments/{env_id}/filesystem" => WritePath,
    PATCH "/v1/sessions/{session_id}/resources/environments/{env_id}/filesystem" => EditPath,
    DELETE "/v1/sessions/{session_id}/resources/environments/{env_id}/filesystem" => DeletePath,
    POST "/v1/sessions/{session_id}/resources/environments/{env_id}/filesystem" => ExtractPath,
    GET "/v1/sessions/{session_id}/resources/environments/{env_id}/filesystem/{path}" => ReadPath,
    PUT "/v1/sessions/{session_id}/resources/environments/{env_id}/filesystem/{path}" => WritePath,
    PATCH "/v1/sessions/{session_id}/resources/environments/{env_id}/filesystem/{path}" => EditPath,
    DELETE "/v1/sessions/{session_id}/resources/environments/{env_id}/filesystem/{path}" => DeletePath,
    POST "/v1/sessions/{session_id}/resources/environments/{env_id}/filesystem/{path}" => ExtractPath,
    GET "/v1/sessions/{session_id}/resources/terminals" => ListTerminals,
    POST "/v1/sessions/{session_id}/resources/terminals" => LaunchTerminal,
    GET "/v1/sessions/{session_id}/resources/terminals/{terminal_id}" => GetTerminal,
    DELETE "/v1/sessions/{session_id}/resources/terminals/{terminal_id}" => CloseTerminal,
    POST "/v1/sessions/{session_id}/resources/terminals/{terminal_id}/transfer" => TransferTerminal,
    GET "/v1/sessions/{session_id}/resources/terminals/{terminal_id}/attach" => AttachTerminal,
    GET "/v1/sessions/{session_id}/resources/{resource_id}" => GetResource,
    GET "/admin/v1/slots" => ListSlots,
    GET "/admin/v1/slots/{slot}" => GetSlot,
    PUT "/admin/v1/slots/{slot}" => PutSlot,
    POST "/admin/v1/slots/{slot}/rollback" => RollbackSlot,
    PUT "/admin/v1/slots/{slot}/limits" => PutSlotLimits,
    GET "/admin/v1/tenants/{tenant}/policy" => GetTenantPolicy,
    PUT "/admin/v1/tenants/{tenant}/policy" => PutTenantPolicy,
    GET "/admin/v1/tenants/{tenant}/usage" => GetTenantUsage,
    GET "/admin/v1/sandbox" => GetSandbox,
}

/// A request's route, the template it matched, and the values of the template's
/// parameters.
#[derive(Debug)]
pub struct Found {
    pub route: Route,
    pub template: &'static str,
    params: Vec<(&'static str, String)>,
}

impl Found {
    /// The value of parameter `name` (`""` for one the template does not have).
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A template's segments, each a literal or a parameter's name.
fn parts(template: &'static str) -> impl Iterator<Item = (&'static str, Option<&'static str>)> {
    template.trim_start_matches('/').split('/').map(|part| {
        (
            part,
            part.strip_prefix('{').and_then(|p| p.strip_suffix('}')),
        )
    })
}

/// Whether `template` fits `segments`, checked without copying anything (every
/// request tries the templates in turn).
fn fits(template: &'static str, segments: &[String]) -> bool {
    let mut count = 0;
    for (i, (literal, param)) in parts(template).enumerate() {
        count = i + 1;
        match (param, segments.get(i)) {
            (_, None) => return false,
            (Some("path"), Some(_)) => return true,
            (Some(_), Some(_)) => {}
            (None, Some(segment)) if segment == literal => {}
            (None, Some(_)) => return false,
        }
    }
    segments.len() == count
}

/// The parameters of a template that fits `segments`; a last `{path}` takes the
/// rest of them, joined with `/`.
fn params(template: &'static str, segments: &[String]) -> Vec<(&'static str, String)> {
    parts(template)
        .enumerate()
        .filter_map(|(i, (_, param))| match param? {
            "path" => Some(("path", segments.get(i..)?.join("/"))),
            name => Some((name, segments.get(i)?.clone())),
        })
        .collect()
}

/// The route of `method` on the path of `segments` (percent-decoded): `404` when
/// no template fits, `405` naming the allowed methods when the first that fits
/// has no entry for `method`.
pub fn find(method: &Method, segments: &[String]) -> ApiResult<Found> {
    let template = TABLE
        .iter()
        .map(|&(_, template, _)| template)
        .find(|template| fits(template, segments))
        .ok_or_else(super::no_route)?;
    let same = || TABLE.iter().filter(move |(_, t, _)| *t == template);
    let Some(&(_, _, route)) = same().find(|(m, _, _)| *m == method.as_str()) else {
        let allow: Vec<&str> = same().map(|(m, _, _)| *m).collect();
        return Err(ApiError::method_not_allowed(allow.join(", ")));
    };
    Ok(Found {
        route,
        template,
        params: params(template, segments),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn segments(path: &str) -> Vec<String> {
        path.trim_start_matches('/')
            .split('/')
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn literal_routes_come_before_parameters_and_paths_span_segments() {
        let found = find(&Method::GET, &segments("/v1/sessions/s1/resources/files")).unwrap();
        assert_eq!(found.route, Route::ListFiles);
        let found = find(&Method::GET, &segments("/v1/sessions/s1/resources/r1")).unwrap();
        assert_eq!(
            (found.route, found.param("resource_id")),
            (Route::GetResource, "r1")
        );
        let path = "/v1/sessions/s1/resources/environments/default/filesystem/a/b/";
        let found = find(&Method::PUT, &segments(path)).unwrap();
        assert_eq!(
            (found.route, found.param("path")),
            (Route::WritePath, "a/b/")
        );
        assert_eq!(found.param("env_id"), "default");
        let slash = "/v1/sessions/s1/resources/environments/default/filesystem/";
        let found = find(&Method::GET, &segments(slash)).unwrap();
        assert_eq!((found.route, found.param("path")), (Route::ReadPath, ""));
        let root = "/v1/sessions/s1/resources/environments/default/filesystem";
        let found = find(&Method::GET, &segments(root)).unwrap();
        assert_eq!((found.route, found.param("path")), (Route::ReadPath, ""));
    }

    #[test]
    fn another_method_is_405_naming_the_allowed_ones_and_no_template_is_404() {
        let e = find(&Method::PUT, &segments("/v1/sessions")).unwrap_err();
        assert_eq!(
            e.headers,
            [(http::header::ALLOW, "GET, POST".parse().unwrap())]
        );
        let e = find(&Method::GET, &segments("/v1/sessions/s1/nothing")).unwrap_err();
        assert_eq!(e.code, super::super::error::Code::NotFound);
        let e = find(
            &Method::GET,
            &segments("/v1/sessions/s1/resources/environments/e/diff"),
        );
        assert_eq!(e.unwrap_err().code, super::super::error::Code::NotFound);
    }
}
