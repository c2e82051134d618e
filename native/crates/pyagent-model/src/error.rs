//! Failures of a model request, each with a stable code (PA740-PA749, `pyagent explain PA74x`).

use std::time::Duration;

/// Why a chat-completions request did not give an answer.
///
/// The code is what a failed `cort` step carries; the message names the endpoint and what happened,
/// so that "the model is down" and "the model answered nonsense" are told apart in `pyagent task`.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The base URL cannot be used (not http, no host, a query string...).
    #[error("PA740: model endpoint {endpoint:?} is not usable: {reason}")]
    BadEndpoint { endpoint: String, reason: String },
    /// Nothing accepted the connection (refused, no route, DNS) or it broke before an answer.
    #[error("PA741: model endpoint {endpoint} unreachable: {detail}")]
    Unreachable { endpoint: String, detail: String },
    /// No complete answer within the request's time (connecting, waiting, reading).
    #[error("PA742: model endpoint {endpoint} gave no answer within {}ms", after.as_millis())]
    Timeout { endpoint: String, after: Duration },
    /// The server answered with a non-2xx status (an unknown model, a bad key, overload...).
    #[error("PA743: model endpoint {endpoint} answered HTTP {status}: {body}")]
    Status {
        endpoint: String,
        status: u16,
        body: String,
    },
    /// The answer was not a chat completion (not JSON, no `choices[0].message.content`, too large).
    #[error(
        "PA744: model endpoint {endpoint} sent an answer that is not a chat completion: {detail}"
    )]
    BadResponse { endpoint: String, detail: String },
}

impl ModelError {
    /// The stable code, as in pyagent_compile/diagnostics/codes.py.
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::BadEndpoint { .. } => "PA740",
            ModelError::Unreachable { .. } => "PA741",
            ModelError::Timeout { .. } => "PA742",
            ModelError::Status { .. } => "PA743",
            ModelError::BadResponse { .. } => "PA744",
        }
    }

    /// Whether trying the same request again may succeed (the step's `retries` apply to these).
    pub fn is_transient(&self) -> bool {
        match self {
            ModelError::Unreachable { .. } | ModelError::Timeout { .. } => true,
            ModelError::Status { status, .. } => *status == 429 || *status >= 500,
            ModelError::BadEndpoint { .. } | ModelError::BadResponse { .. } => false,
        }
    }
}
