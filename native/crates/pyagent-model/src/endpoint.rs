//! The base URL of an OpenAI-compatible server, e.g. `http://127.0.0.1:8080/v1`.

use crate::error::ModelError;

/// A parsed base URL: requests go to `<base>/chat/completions`.
///
/// Only `http` is spoken: model servers sit beside the node (loopback, the pod's network, a
/// Service in the cluster) where the mesh or the cluster network protects the hop. An `https`
/// endpoint is refused with PA740 rather than silently sent in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: String,
    chat: http::Uri,
}

impl Endpoint {
    pub fn parse(base: &str) -> Result<Self, ModelError> {
        let bad = |reason: &str| ModelError::BadEndpoint {
            endpoint: base.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = base.trim_end_matches('/');
        let uri: http::Uri = trimmed
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(
                    "https is not supported yet: use http on a protected network hop",
                ))
            }
            _ => return Err(bad("the base URL must start with http://")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if uri.query().is_some() {
            return Err(bad("a base URL has no query string"));
        }
        let chat = format!("{trimmed}/chat/completions")
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        Ok(Self {
            base: trimmed.to_string(),
            chat,
        })
    }

    /// The base URL as given, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `<base>/chat/completions`.
    pub fn chat_completions(&self) -> &http::Uri {
        &self.chat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_path_is_under_the_base() {
        let e = Endpoint::parse("http://127.0.0.1:8080/v1/").unwrap();
        assert_eq!(e.base(), "http://127.0.0.1:8080/v1");
        assert_eq!(
            e.chat_completions().to_string(),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        let e = Endpoint::parse("http://vllm.models.svc:8000").unwrap();
        assert_eq!(e.chat_completions().path(), "/chat/completions");
    }

    #[test]
    fn unusable_bases_are_pa740() {
        for base in [
            "https://api.example.com/v1",
            "ftp://x/v1",
            "127.0.0.1:8080",
            "http:///v1",
            "http://h/v1?x=1",
            "",
        ] {
            let err = Endpoint::parse(base).unwrap_err();
            assert_eq!(err.code(), "PA740", "{base}: {err}");
        }
    }
}
