//! The API's one error body, `{"error": {"code", "message"}}`, and the one place
//! where every layer's errors (host, component, policy, storage) become it.

use super::body::{Body, json_response};
use crate::app;
use crate::auth::Unauthorized;
use crate::bindings::types::{Error as ComponentError, ErrorCode};
use crate::runtime::{BindError, CallError};
use http::{HeaderValue, Response, StatusCode};

/// Every error code of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    InvalidInput,
    InvalidPath,
    Unauthorized,
    Forbidden,
    PathForbidden,
    NotFound,
    PathNotFound,
    MethodNotAllowed,
    Conflict,
    DirectoryNotEmpty,
    AmbiguousMatch,
    PayloadTooLarge,
    UnsupportedMediaType,
    RangeNotSatisfiable,
    NoMatch,
    InternalError,
    ComponentError,
    ComponentTimeout,
    ServerBusy,
    QuotaExceeded,
    InsufficientStorage,
    /// What was asked needs two runners at once (`docs/scale-out.md`).
    CrossRunner,
    /// Another runner, whose answer this one needed, did not give it.
    RunnerUnavailable,
}

impl Code {
    pub fn status(self) -> StatusCode {
        use Code::*;
        match self {
            InvalidInput | InvalidPath => StatusCode::BAD_REQUEST,
            Unauthorized => StatusCode::UNAUTHORIZED,
            Forbidden | PathForbidden => StatusCode::FORBIDDEN,
            NotFound | PathNotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Conflict | DirectoryNotEmpty | AmbiguousMatch | CrossRunner => StatusCode::CONFLICT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            NoMatch => StatusCode::UNPROCESSABLE_ENTITY,
            InternalError | ComponentError => StatusCode::INTERNAL_SERVER_ERROR,
            ComponentTimeout | ServerBusy | RunnerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    pub fn as_str(self) -> &'static str {
        use Code::*;
        match self {
            InvalidInput => "invalid_input",
            InvalidPath => "invalid_path",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
            PathForbidden => "path_forbidden",
            NotFound => "not_found",
            PathNotFound => "path_not_found",
            MethodNotAllowed => "method_not_allowed",
            Conflict => "conflict",
            DirectoryNotEmpty => "directory_not_empty",
            AmbiguousMatch => "ambiguous_match",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            RangeNotSatisfiable => "range_not_satisfiable",
            NoMatch => "no_match",
            InternalError => "internal_error",
            ComponentError => "component_error",
            ComponentTimeout => "component_timeout",
            ServerBusy => "server_busy",
            QuotaExceeded => "quota_exceeded",
            InsufficientStorage => "insufficient_storage",
            CrossRunner => "cross_runner",
            RunnerUnavailable => "runner_unavailable",
        }
    }
}

/// An error on its way to the client.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// Headers the answer carries besides the body's (`Allow`, `Retry-After`, `Content-Range`).
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
    /// The request body was left unread: the connection must not be reused.
    pub close: bool,
    /// What the log gets of an internal error (the client gets only `message`).
    pub detail: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            headers: Vec::new(),
            close: false,
            detail: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::InvalidInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::NotFound, message)
    }

    pub fn method_not_allowed(allow: String) -> ApiError {
        let message = format!("allowed methods: {allow}");
        ApiError::new(Code::MethodNotAllowed, message).with_header(http::header::ALLOW, &allow)
    }

    /// Adds a header to the answer (dropped if `value` cannot be one).
    pub fn with_header(mut self, name: http::HeaderName, value: &str) -> ApiError {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    /// A failure the client cannot fix; the detail goes to the log (when the
    /// answer is sent), not to the client.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> ApiError {
        ApiError {
            detail: Some(format!("{context}: {error:#}")),
            ..ApiError::new(
                Code::InternalError,
                format!("internal error while {context}"),
            )
        }
    }

    /// As [`ApiError::internal`], unless the server ran out of file descriptors:
    /// a capacity problem that passes (`503 server_busy`, retry after
    /// `retry_after_s`), not a fault.
    pub fn internal_or_busy(context: &str, error: anyhow::Error, retry_after_s: u64) -> ApiError {
        let out_of_files = error
            .chain()
            .filter_map(|e| e.downcast_ref::<std::io::Error>())
            .any(|e| matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)));
        if !out_of_files {
            return ApiError::internal(context, error);
        }
        tracing::warn!("{context}: out of file descriptors: {error:#}");
        let message = format!(
            "the server has no file descriptors free while {context}; retry in {retry_after_s} s"
        );
        ApiError::new(Code::ServerBusy, message)
            .with_header(http::header::RETRY_AFTER, &retry_after_s.to_string())
    }

    /// The error body, naming the request's id; what it hides from the client
    /// is logged.
    pub fn body(&self, request_id: &str) -> String {
        if let Some(detail) = &self.detail {
            tracing::error!(code = self.code.as_str(), "{detail}");
        }
        serde_json::json!({"error": {
            "code": self.code.as_str(),
            "message": self.message,
            "request_id": request_id,
        }})
        .to_string()
    }

    /// The answer, its body naming the request's id.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let body = self.body(request_id);
        let mut response = json_response(self.code.status(), body);
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        if self.close {
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<ComponentError> for ApiError {
    fn from(e: ComponentError) -> ApiError {
        let code = match e.code {
            ErrorCode::InvalidInput => Code::InvalidInput,
            ErrorCode::InvalidPath => Code::InvalidPath,
            ErrorCode::Forbidden => Code::Forbidden,
            ErrorCode::PathForbidden => Code::PathForbidden,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::PathNotFound => Code::PathNotFound,
            ErrorCode::Conflict => Code::Conflict,
            ErrorCode::DirectoryNotEmpty => Code::DirectoryNotEmpty,
            ErrorCode::AmbiguousMatch => Code::AmbiguousMatch,
            ErrorCode::PayloadTooLarge => Code::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType => Code::UnsupportedMediaType,
            ErrorCode::NoMatch => Code::NoMatch,
            ErrorCode::InternalError => Code::InternalError,
        };
        ApiError::new(code, e.message)
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> ApiError {
        match e {
            CallError::Trapped { .. } => ApiError::new(Code::ComponentError, e.to_string()),
            CallError::Timeout(_) => ApiError::new(Code::ComponentTimeout, e.to_string()),
            CallError::Storage(s) => ApiError::internal("accessing storage", s),
            CallError::Workspace(e) => ApiError::internal("opening the workspace", e),
            CallError::Busy { retry_after_s } => ApiError::new(Code::ServerBusy, e.to_string())
                .with_header(http::header::RETRY_AFTER, &retry_after_s.to_string()),
        }
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> ApiError {
        ApiError::internal("accessing storage", e)
    }
}

impl From<crate::cluster::Unavailable> for ApiError {
    fn from(e: crate::cluster::Unavailable) -> ApiError {
        ApiError::new(Code::RunnerUnavailable, e.to_string())
            .with_header(http::header::RETRY_AFTER, "1")
    }
}

impl From<crate::cluster::listing::Error> for ApiError {
    fn from(e: crate::cluster::listing::Error) -> ApiError {
        match e {
            crate::cluster::listing::Error::Store(e) => e.into(),
            crate::cluster::listing::Error::Unavailable(e) => e.into(),
        }
    }
}

impl From<app::Exceeded> for ApiError {
    fn from(e: app::Exceeded) -> ApiError {
        ApiError::new(Code::QuotaExceeded, e.to_string())
            .with_header(http::header::RETRY_AFTER, &e.retry_after_s.to_string())
    }
}

impl From<Unauthorized> for ApiError {
    fn from(e: Unauthorized) -> ApiError {
        ApiError::new(Code::Unauthorized, e.0)
    }
}

impl From<app::Error> for ApiError {
    fn from(e: app::Error) -> ApiError {
        use app::Error as E;
        match e {
            E::NoSession(_) => ApiError::not_found(e.to_string()),
            E::Denied(reason) => ApiError::new(Code::Forbidden, reason),
            E::PolicyTimeout => ApiError::new(Code::ComponentTimeout, e.to_string()),
            E::PolicyFailed => ApiError::new(Code::Forbidden, e.to_string()),
            E::Component(e) => e.into(),
            E::Call(e) => e.into(),
            E::Store(e) => e.into(),
            E::Quota(e) => e.into(),
            E::NoRoom { .. } => ApiError::new(Code::InsufficientStorage, e.to_string()),
            E::Internal { context, detail } => ApiError::internal(context, detail),
        }
    }
}

impl From<crate::process::Refused> for ApiError {
    fn from(e: crate::process::Refused) -> ApiError {
        use crate::process::Refused as R;
        match e {
            R::Ended(_) | R::StdinClosed(_) | R::Stalled { .. } => {
                ApiError::new(Code::Conflict, e.to_string())
            }
            R::Signal(..) => ApiError::internal("signalling a process", e),
        }
    }
}

impl From<crate::archive::unpack::Refused> for ApiError {
    fn from(e: crate::archive::unpack::Refused) -> ApiError {
        use crate::archive::unpack::Refused as R;
        let code = match e {
            R::Malformed(_) | R::Unsafe { .. } => Code::InvalidInput,
            R::Conflict(_) => Code::Conflict,
            R::TooManyEntries(_) | R::TooLarge(_) => Code::PayloadTooLarge,
            R::Io(e) => return ApiError::internal("unpacking an archive", e),
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<BindError> for ApiError {
    fn from(e: BindError) -> ApiError {
        match e {
            BindError::Refused(_) | BindError::InvalidLimits(_) => ApiError::invalid(e.to_string()),
            BindError::UnknownTenant(_) => ApiError::not_found(e.to_string()),
            BindError::NoPrevious(_) => ApiError::new(Code::Conflict, e.to_string()),
            BindError::Storage(s) => ApiError::internal("storing the binding", s),
            BindError::Config(c) => ApiError::internal("reading the config", c),
            BindError::Busy(e) => e.into(),
        }
    }
}
