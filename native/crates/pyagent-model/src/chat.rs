//! The chat-completions client: one request, one answer, or a coded error.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use crate::endpoint::Endpoint;
use crate::error::ModelError;

/// Answers larger than this are refused (PA744): a chat completion of a few thousand tokens is
/// tens of kilobytes; anything near this bound is a misbehaving server, not an answer.
const MAX_ANSWER_BYTES: usize = 8 << 20;
/// How much of an error body goes into the message (a server's HTML error page can be long).
const ERROR_BODY_CHARS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }
}

/// Sampling settings sent with every request, as declared on the core's model. `None` leaves the
/// server's default. Temperature 0 with a seed is what makes a run repeatable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub seed: Option<i64>,
    pub max_tokens: Option<u32>,
}

/// Token counts from the answer's `usage` (zero where the server reports none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
    }
}

/// Everything needed to reach one core's model (`work.json` `models.<core>`, with the API key
/// already read from the environment variable the contract names).
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The model name sent as `model` (servers serving one model ignore it; vLLM checks it).
    pub name: String,
    pub endpoint: Endpoint,
    /// Sent as `Authorization: Bearer <key>`; never logged or recorded.
    pub api_key: Option<String>,
    pub sampling: Sampling,
    /// Establishing the TCP connection.
    pub connect_timeout: Duration,
    /// One whole request: connecting, the model's time, reading the answer.
    pub request_timeout: Duration,
}

impl ModelConfig {
    /// A config with the defaults: 10 s to connect, 10 min a request (a large model on a busy GPU
    /// can take minutes; the step's own timeout bounds the whole).
    pub fn new(name: impl Into<String>, endpoint: Endpoint) -> Self {
        Self {
            name: name.into(),
            endpoint,
            api_key: None,
            sampling: Sampling::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(600),
        }
    }
}

/// One answer: the text of `choices[0].message.content`, what it cost, and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    pub content: String,
    pub finish_reason: Option<String>,
    pub usage: Usage,
    pub elapsed: Duration,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct WireResponse {
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    // Null for a tool call or an empty answer; an answer of nothing is an empty string here.
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
}

/// An async client for one model endpoint. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct ChatClient {
    config: std::sync::Arc<ModelConfig>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for ChatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: the config holds the API key.
        f.debug_struct("ChatClient")
            .field("model", &self.config.name)
            .field("endpoint", &self.config.endpoint.base())
            .finish()
    }
}

impl ChatClient {
    /// Needs a running Tokio runtime (the pool's idle connections are reaped on it).
    pub fn new(config: ModelConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            config: std::sync::Arc::new(config),
            http,
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Sends `messages` with the model's own sampling settings.
    pub async fn chat(&self, messages: &[Message]) -> Result<ChatReply, ModelError> {
        self.chat_with(messages, &self.config.sampling).await
    }

    /// Sends `messages` with the given sampling settings (non-streaming).
    pub async fn chat_with(
        &self,
        messages: &[Message],
        sampling: &Sampling,
    ) -> Result<ChatReply, ModelError> {
        let started = Instant::now();
        let limit = self.config.request_timeout;
        let reply = tokio::time::timeout(limit, self.exchange(messages, sampling))
            .await
            .map_err(|_| ModelError::Timeout {
                endpoint: self.config.endpoint.base().to_string(),
                after: limit,
            })??;
        Ok(ChatReply {
            elapsed: started.elapsed(),
            ..reply
        })
    }

    async fn exchange(
        &self,
        messages: &[Message],
        sampling: &Sampling,
    ) -> Result<ChatReply, ModelError> {
        let endpoint = self.config.endpoint.base();
        let body = serde_json::to_vec(&WireRequest {
            model: &self.config.name,
            messages,
            stream: false,
            temperature: sampling.temperature,
            seed: sampling.seed,
            max_tokens: sampling.max_tokens,
        })
        .map_err(|e| ModelError::BadEndpoint {
            endpoint: endpoint.to_string(),
            reason: e.to_string(),
        })?;
        let mut request = http::Request::post(self.config.endpoint.chat_completions().clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json");
        if let Some(key) = &self.config.api_key {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request =
            request
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| ModelError::BadEndpoint {
                    endpoint: endpoint.to_string(),
                    reason: e.to_string(),
                })?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| ModelError::Unreachable {
                endpoint: endpoint.to_string(),
                detail: describe(&e),
            })?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| read_error(endpoint, e))?
            .to_bytes();
        if !status.is_success() {
            let text: String = String::from_utf8_lossy(&bytes)
                .chars()
                .take(ERROR_BODY_CHARS)
                .collect();
            return Err(ModelError::Status {
                endpoint: endpoint.to_string(),
                status: status.as_u16(),
                body: text,
            });
        }
        parse_reply(endpoint, &bytes)
    }
}

fn parse_reply(endpoint: &str, bytes: &[u8]) -> Result<ChatReply, ModelError> {
    let bad = |detail: String| ModelError::BadResponse {
        endpoint: endpoint.to_string(),
        detail,
    };
    let wire: WireResponse = serde_json::from_slice(bytes).map_err(|e| bad(format!("{e}")))?;
    let first = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| bad("no choices".to_string()))?;
    let usage = wire
        .usage
        .map(|u| Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens.max(u.prompt_tokens + u.completion_tokens),
        })
        .unwrap_or_default();
    Ok(ChatReply {
        content: first.message.content.unwrap_or_default(),
        finish_reason: first.finish_reason,
        usage,
        elapsed: Duration::ZERO,
    })
}

fn read_error(endpoint: &str, e: Box<dyn std::error::Error + Send + Sync>) -> ModelError {
    if e.is::<http_body_util::LengthLimitError>() {
        ModelError::BadResponse {
            endpoint: endpoint.to_string(),
            detail: format!("larger than {MAX_ANSWER_BYTES} bytes"),
        }
    } else {
        ModelError::Unreachable {
            endpoint: endpoint.to_string(),
            detail: format!("the answer broke off: {e}"),
        }
    }
}

/// The error and its causes on one line ("client error (Connect): tcp connect error: Connection
/// refused"): hyper's top-level message alone does not say what went wrong.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_takes_the_first_choice_and_usage() {
        let body = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"length"}],
            "usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#;
        let r = parse_reply("e", body).unwrap();
        assert_eq!(r.content, "hi");
        assert_eq!(r.finish_reason.as_deref(), Some("length"));
        assert_eq!(
            r.usage,
            Usage {
                prompt_tokens: 7,
                completion_tokens: 3,
                total_tokens: 10
            }
        );
    }

    #[test]
    fn missing_usage_counts_zero_and_null_content_is_empty() {
        let r = parse_reply("e", br#"{"choices":[{"message":{"content":null}}]}"#).unwrap();
        assert_eq!(r.content, "");
        assert_eq!(r.usage, Usage::default());
    }

    #[test]
    fn not_a_completion_is_pa744() {
        for body in [
            &b"<html>"[..],
            br#"{"choices":[]}"#,
            br#"{"object":"error"}"#,
        ] {
            assert_eq!(parse_reply("e", body).unwrap_err().code(), "PA744");
        }
    }

    #[test]
    fn request_omits_unset_sampling() {
        let m = [Message::user("q")];
        let w = WireRequest {
            model: "m",
            messages: &m,
            stream: false,
            temperature: Some(0.0),
            seed: None,
            max_tokens: Some(5),
        };
        let v: serde_json::Value = serde_json::to_value(&w).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"model":"m","messages":[{"role":"user","content":"q"}],"stream":false,"temperature":0.0,"max_tokens":5})
        );
    }
}
