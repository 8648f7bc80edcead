//! The one error type of the gateway: every refusal becomes an HTTP status and a JSON body
//! `{"error": {"code": "...", "message": "..."}}` with a stable code. Internal errors reach the
//! client as a generic message; the details go to the log.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use confab_schemas::{ErrorCode, Refusal};
use serde_json::json;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{1}")]
    Refused(ErrorCode, String),
    #[error("internal: {0}")]
    Internal(String),
    /// Too many attempts: HTTP 429 with `Retry-After`.
    #[error("{1}")]
    Throttled(ErrorCode, String, std::time::Duration),
    /// A refusal by a numeric limit, named in the body's `limit` (bytes, or a count) so a client
    /// need not read it out of the message.
    #[error("{1}")]
    OverLimit(ErrorCode, String, u64),
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::Refused(code, message.into())
    }

    fn status(code: ErrorCode) -> StatusCode {
        use ErrorCode::*;
        match code {
            NotAuthenticated | AuthFailed => StatusCode::UNAUTHORIZED,
            Forbidden | NotMember | CsrfFailed | ReauthRequired | Blocked | DmRefused | Banned | Muted | BannedWord => {
                StatusCode::FORBIDDEN
            }
            TooManyConnections | TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            NotFound | UnknownRoom | AttachmentNotFound => StatusCode::NOT_FOUND,
            AttachmentUsed => StatusCode::CONFLICT,
            TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            Conflict | Repeated => StatusCode::CONFLICT,
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            FrameTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Overloaded | Retry | SearchUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, message) = match self {
            ApiError::Throttled(code, message, wait) => {
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                let body = Json(json!({"error": {"code": code, "message": message, "retry_after": secs}}));
                return (StatusCode::TOO_MANY_REQUESTS, [(axum::http::header::RETRY_AFTER, secs.to_string())], body)
                    .into_response();
            }
            ApiError::Refused(code, message) => (code, message),
            ApiError::OverLimit(code, message, limit) => {
                let body = Json(json!({"error": {"code": code, "message": message, "limit": limit}}));
                return (Self::status(code), body).into_response();
            }
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (ErrorCode::Internal, "internal error".to_owned())
            }
        };
        (Self::status(code), Json(json!({"error": {"code": code, "message": message}}))).into_response()
    }
}

impl From<confab_actors::Error> for ApiError {
    fn from(e: confab_actors::Error) -> ApiError {
        match e {
            confab_actors::Error::Conflict(what) => ApiError::new(ErrorCode::Conflict, format!("{what} is taken")),
            confab_actors::Error::NotFound(what) => ApiError::new(ErrorCode::NotFound, format!("{what} not found")),
            confab_actors::Error::Invalid(m) => ApiError::new(ErrorCode::Invalid, m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(Refusal { code, message }: Refusal) -> ApiError {
        ApiError::Refused(code, message)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        let code =
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE { ErrorCode::FrameTooLarge } else { ErrorCode::Invalid };
        ApiError::new(code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::new(ErrorCode::Invalid, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::new(ErrorCode::Invalid, r.body_text())
    }
}

/// `Json` whose rejection is an `ApiError`.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Query` whose rejection is an `ApiError`.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `Path` whose rejection is an `ApiError`.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);
