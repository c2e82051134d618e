//! The compiler's real work.json (the research example's, kept in step by
//! tests/test_models.py::test_the_crates_fixture_is_what_the_compiler_writes) read by this
//! crate's side of the contract: every `models` entry parses, and the one with a server becomes
//! a client config whose API key comes from the variable the contract names.

use std::collections::BTreeMap;

use pyagent_model::{Sampling, WorkModel};

#[derive(serde::Deserialize)]
struct Models {
    models: BTreeMap<String, WorkModel>,
}

#[test]
fn the_compilers_models_read_back() {
    let text = include_str!("data/research-work.json");
    let work: Models = serde_json::from_str(text).expect("work.json's models parse");
    assert_eq!(
        work.models.keys().collect::<Vec<_>>(),
        ["coder", "security"]
    );

    let coder = &work.models["coder"];
    let key = coder
        .api_key
        .as_ref()
        .expect("the research coder's model has an API key");
    assert_eq!(key.env, "PYAGENT_MODEL_KEY_CODER");
    let config = coder
        .config(|name| (name == key.env).then(|| "sk-from-secret".to_string()))
        .expect("a config");
    assert_eq!(
        config.endpoint.chat_completions().to_string(),
        "http://qwen3-coder.models.svc:8000/v1/chat/completions"
    );
    assert_eq!(config.api_key.as_deref(), Some("sk-from-secret"));
    assert_eq!(
        config.sampling,
        Sampling {
            temperature: Some(0.2),
            seed: None,
            max_tokens: Some(2048)
        }
    );

    // A model named without a server cannot be asked: PA740, not a request to nowhere.
    let security = &work.models["security"];
    assert_eq!(security.endpoint, None);
    assert_eq!(security.config(|_| None).unwrap_err().code(), "PA740");
}
