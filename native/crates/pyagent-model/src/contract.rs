//! A core's entry of work.json's `models` (pyagent_compile/contracts/work.py `Model`), and the
//! client config built from it: the one place the node turns the contract into a [`ModelConfig`].

use serde::Deserialize;

use crate::chat::{ModelConfig, Sampling};
use crate::endpoint::Endpoint;
use crate::error::ModelError;

/// `models.<core>` of work.json. Every field is written by the compiler (null when unset), and
/// unknown ones are refused: the two sides of the contract move together.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkModel {
    pub name: String,
    pub endpoint: Option<String>,
    pub api_key: Option<WorkApiKey>,
    pub temperature: Option<f64>,
    pub seed: Option<i64>,
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkApiKey {
    /// The environment variable that holds the key on this node (the local target).
    pub env: String,
    /// The file that holds it (Kubernetes: the Secret mounted as a file, not an environment
    /// variable, which any process of the pod and `kubectl describe` would show); read first.
    #[serde(default)]
    pub file: Option<String>,
    /// The Kubernetes Secret it comes from (informative on the node).
    pub secret: WorkSecretKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkSecretKey {
    pub name: String,
    pub key: String,
}

impl WorkModel {
    /// The client config for this model, the API key read with `env` (the process environment
    /// in the node: `|name| std::env::var(name).ok()`). PA740 when there is no endpoint (a model
    /// named without a server) or the key's variable is unset or empty.
    pub fn config(&self, env: impl Fn(&str) -> Option<String>) -> Result<ModelConfig, ModelError> {
        let Some(base) = &self.endpoint else {
            return Err(ModelError::BadEndpoint {
                endpoint: String::new(),
                reason: format!("model {:?} names no endpoint in work.json", self.name),
            });
        };
        let mut config = ModelConfig::new(self.name.clone(), Endpoint::parse(base)?);
        config.sampling = Sampling {
            temperature: self.temperature,
            seed: self.seed,
            max_tokens: self.max_tokens,
        };
        if let Some(key) = &self.api_key {
            let from_file = key
                .file
                .as_ref()
                .and_then(|f| std::fs::read_to_string(f).ok())
                .map(|v| v.trim().to_string());
            let value = from_file.or_else(|| env(&key.env)).filter(|v| !v.is_empty()).ok_or_else(|| ModelError::BadEndpoint {
                endpoint: base.clone(),
                reason: format!(
                    "the API key is neither in {} nor in the variable {} on this node (Kubernetes: Secret {}, key {})",
                    key.file.as_deref().unwrap_or("no file"), key.env, key.secret.name, key.secret.key
                ),
            })?;
            config.api_key = Some(value);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the compiler writes (tests/test_models.py asserts the same shape on the Python side).
    const ENTRY: &str = r#"{"name": "small", "endpoint": "http://127.0.0.1:8080/v1",
        "apiKey": {"env": "PYAGENT_MODEL_KEY_MY_HELPER", "secret": {"name": "model-keys", "key": "helper"}},
        "temperature": 0.0, "seed": 7, "maxTokens": 256}"#;

    #[test]
    fn the_entry_becomes_a_config_with_the_key_from_the_environment() {
        let entry: WorkModel = serde_json::from_str(ENTRY).unwrap();
        let config = entry
            .config(|name| (name == "PYAGENT_MODEL_KEY_MY_HELPER").then(|| "sk-1".to_string()))
            .unwrap();
        assert_eq!(config.name, "small");
        assert_eq!(config.endpoint.base(), "http://127.0.0.1:8080/v1");
        assert_eq!(config.api_key.as_deref(), Some("sk-1"));
        assert_eq!(
            config.sampling,
            Sampling {
                temperature: Some(0.0),
                seed: Some(7),
                max_tokens: Some(256)
            }
        );
    }

    #[test]
    fn a_missing_key_or_endpoint_is_pa740_naming_what_to_set() {
        let entry: WorkModel = serde_json::from_str(ENTRY).unwrap();
        let err = entry.config(|_| None).unwrap_err();
        assert_eq!(err.code(), "PA740");
        assert!(
            err.to_string().contains("PYAGENT_MODEL_KEY_MY_HELPER"),
            "{err}"
        );
        let bare: WorkModel = serde_json::from_str(
            r#"{"name": "m", "endpoint": null, "apiKey": null, "temperature": null, "seed": null, "maxTokens": null}"#,
        )
        .unwrap();
        assert_eq!(bare.config(|_| None).unwrap_err().code(), "PA740");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = ENTRY.replace("\"seed\": 7", "\"seed\": 7, \"topP\": 0.9");
        assert!(serde_json::from_str::<WorkModel>(&text).is_err());
    }
}
