//! Runs CoRT once against an endpoint and prints the record as JSON (benchmarks/cort.py drives it).
//!
//!     cort_run ENDPOINT ROUNDS ALTERNATIVES MAX_TOKENS PROMPT
//!
//! Temperature 0 and seed 7: a run is repeatable on a deterministic server.

use std::time::Duration;

use pyagent_model::{cort, ChatClient, CortSettings, CortTask, Endpoint, ModelConfig, Sampling};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, rounds, alternatives, max_tokens, prompt] = args.as_slice() else {
        eprintln!("usage: cort_run ENDPOINT ROUNDS ALTERNATIVES MAX_TOKENS PROMPT");
        std::process::exit(2);
    };
    let endpoint = Endpoint::parse(endpoint).unwrap_or_else(|e| fail(&e));
    let mut config = ModelConfig::new("bench", endpoint);
    config.sampling = Sampling {
        temperature: Some(0.0),
        seed: Some(7),
        max_tokens: Some(number(max_tokens)),
    };
    config.request_timeout = Duration::from_secs(300);
    let client = ChatClient::new(config);
    let settings = CortSettings {
        rounds: number(rounds),
        alternatives: number(alternatives),
    };
    let task = CortTask {
        prompt: prompt.clone(),
    };
    match cort(&client, &task, settings).await {
        Ok(record) => println!("{}", serde_json::to_string(&record).unwrap()),
        Err(failure) => fail(&failure),
    }
}

fn number(text: &str) -> u32 {
    text.parse()
        .unwrap_or_else(|_| fail(&format!("not a whole number: {text}")))
}

fn fail(e: &dyn std::fmt::Display) -> ! {
    eprintln!("{e}");
    std::process::exit(1)
}
