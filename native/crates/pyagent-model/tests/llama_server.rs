//! Against a real inference server: llama.cpp (through llama-cpp-python's OpenAI-compatible
//! server, installed by .ci/install-llama.sh) serving a tiny llama model with random weights that
//! the test writes itself (tiny_gguf.py; nothing is downloaded).
//!
//! What this proves: the client speaks the chat-completions protocol as a real server serves it
//! (request body, sampling settings, `usage`, `finish_reason`, error statuses), CoRT makes the
//! requests it should and records all of them, the fallback choice holds when the judge's answer
//! is gibberish, and a seeded run is repeatable on this server. What it does not: that CoRT
//! improves answers (random weights have no skill), or anything about vLLM, SGLang or Ollama
//! beyond their sharing this protocol.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pyagent_model::{
    cort, ChatClient, ChoiceHow, CortRecord, CortSettings, CortTask, Endpoint, Message,
    ModelConfig, Sampling,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous: CI runs on two loaded cores, and the server imports a fair amount of Python.
const START_TIMEOUT: Duration = Duration::from_secs(180);

fn llama_python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PYAGENT_LLAMA_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../.tools/llama-venv/bin/python");
    p.exists().then_some(p)
}

/// The server's Python, or None when it is not installed here (then the test says so and passes;
/// under CI, where .ci/setup installs it, a missing server is a failure unless PYAGENT_SKIP_LLAMA=1
/// said to skip it).
fn require_llama() -> Option<PathBuf> {
    if std::env::var_os("PYAGENT_SKIP_LLAMA").is_some_and(|v| v == "1") {
        eprintln!("SKIP: PYAGENT_SKIP_LLAMA=1 (the install was skipped on purpose)");
        return None;
    }
    match llama_python() {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => {
            panic!("llama-cpp-python is not installed: .ci/install-llama.sh should have run")
        }
        None => {
            eprintln!(
                "SKIP: no .tools/llama-venv (run .ci/install-llama.sh) and no PYAGENT_LLAMA_PYTHON"
            );
            None
        }
    }
}

struct Server {
    child: Child,
    port: u16,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    _dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the tiny model and starts the server on a port the kernel picks (port 0; uvicorn logs
/// the port it got), then waits until it answers `GET /v1/models`.
async fn start_server(python: &Path, api_key: Option<&str>) -> Server {
    let dir = std::env::temp_dir().join(format!(
        "pyagent-model-llama-{}-{}",
        std::process::id(),
        nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = TempDir(dir);
    let model = dir.0.join("tiny.gguf");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tiny_gguf.py");
    let made = Command::new(python)
        .arg(&script)
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "tiny_gguf.py failed: {}",
        String::from_utf8_lossy(&made.stderr)
    );

    let mut child = Command::new(python)
        .args([
            "-m",
            "llama_cpp.server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ])
        .arg("--model")
        .arg(&model)
        // chatml: the tiny model has no chat template of its own.
        .args([
            "--chat_format",
            "chatml",
            "--n_ctx",
            "2048",
            "--n_threads",
            "1",
            "--verbose",
            "false",
        ])
        .args(api_key.map(|k| ["--api_key", k]).into_iter().flatten())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start llama_cpp.server");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    // Keeps draining stderr after the port is known, so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            if let Some(port) = line.split("Uvicorn running on http://127.0.0.1:").nth(1) {
                let digits: String = port.chars().take_while(char::is_ascii_digit).collect();
                let _ = tx.send(digits.parse::<u16>().ok());
            }
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        let _ = tx.send(None);
    });
    let port = match rx.recv_timeout(START_TIMEOUT) {
        Ok(Some(port)) => port,
        _ => {
            let _ = child.kill();
            panic!(
                "llama_cpp.server did not report its port:\n{}",
                log.lock().unwrap()
            );
        }
    };
    let server = Server {
        child,
        port,
        log,
        _dir: dir,
    };
    let deadline = Instant::now() + START_TIMEOUT;
    while !models_ready(port, api_key).await {
        assert!(
            Instant::now() < deadline,
            "server not ready:\n{}",
            server.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// llama-cpp-python's server has no /health (llama.cpp's own server does): a 200 on
/// /v1/models means the model is loaded and requests are served.
async fn models_ready(port: u16, api_key: Option<&str>) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let auth = api_key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn client(port: u16, path: &str, sampling: Sampling) -> ChatClient {
    client_with_key(port, path, sampling, None)
}

fn client_with_key(port: u16, path: &str, sampling: Sampling, key: Option<&str>) -> ChatClient {
    let mut config = ModelConfig::new(
        "tiny",
        Endpoint::parse(&format!("http://127.0.0.1:{port}{path}")).unwrap(),
    );
    config.sampling = sampling;
    config.api_key = key.map(str::to_string);
    config.request_timeout = Duration::from_secs(120);
    ChatClient::new(config)
}

fn deterministic() -> Sampling {
    Sampling {
        temperature: Some(0.0),
        seed: Some(7),
        max_tokens: Some(16),
    }
}

fn exchanges(r: &CortRecord) -> Vec<&pyagent_model::Exchange> {
    let mut all: Vec<_> = r.initial.iter().collect();
    for round in &r.rounds {
        all.extend(round.alternatives.iter());
        all.push(&round.judge);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_llama_cpp_server() {
    let Some(python) = require_llama() else {
        return;
    };
    let server = start_server(&python, None).await;

    // -- one request: an answer, the sampling settings honoured, usage counted ---------------
    let c = client(server.port, "/v1", deterministic());
    let reply = c
        .chat(&[Message::user("Say hello.")])
        .await
        .expect("a chat completion");
    assert!(reply.usage.prompt_tokens > 0, "{reply:?}");
    assert!(
        reply.usage.completion_tokens >= 1 && reply.usage.completion_tokens <= 16,
        "maxTokens: {reply:?}"
    );
    assert_eq!(
        reply.usage.total_tokens,
        reply.usage.prompt_tokens + reply.usage.completion_tokens
    );
    let again = c.chat(&[Message::user("Say hello.")]).await.unwrap();
    assert_eq!(
        again.content, reply.content,
        "temperature 0 and a seed: the same answer"
    );

    // Seeded sampling at temperature 1 repeats too (llama-cpp-python reseeds per request).
    let hot = |seed| Sampling {
        temperature: Some(1.0),
        seed: Some(seed),
        max_tokens: Some(16),
    };
    let a = client(server.port, "/v1", hot(11))
        .chat(&[Message::user("Say hello.")])
        .await
        .unwrap();
    let b = client(server.port, "/v1", hot(11))
        .chat(&[Message::user("Say hello.")])
        .await
        .unwrap();
    assert_eq!(a.content, b.content, "same seed, same sample");

    // A wrong base path is the server's 404, coded.
    let err = client(server.port, "/nope", deterministic())
        .chat(&[Message::user("x")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PA743", "{err}");
    assert!(err.to_string().contains("404"), "{err}");

    // -- CoRT: 2 rounds of 2 alternatives ------------------------------------------------------
    let task = CortTask {
        prompt: "Explain why `assert add(2, 2) == 5` fails.".to_string(),
    };
    let settings = CortSettings {
        rounds: 2,
        alternatives: 2,
    };
    let first = cort(&c, &task, settings).await.expect("cort");
    let record_json = serde_json::to_string_pretty(&first).unwrap();

    // Every request is there: the initial answer, then per round 2 alternatives and a judge.
    assert_eq!(first.requests, 1 + 2 * (2 + 1), "{record_json}");
    assert_eq!(first.rounds.len(), 2);
    assert_eq!(exchanges(&first).len(), first.requests as usize);
    let initial = first.initial.as_ref().unwrap();
    assert_eq!(initial.prompt, vec![Message::user(task.prompt.clone())]);
    let mut best = initial.answer.clone();
    for round in &first.rounds {
        assert_eq!(round.alternatives.len(), 2);
        for (i, alt) in round.alternatives.iter().enumerate() {
            let sent = &alt.prompt[0].content;
            assert!(
                sent.contains(&task.prompt) && sent.contains(&best),
                "round {} sees the current best",
                round.round
            );
            assert!(sent.contains(&format!("alternative answer {} of 2", i + 1)));
        }
        let judged = &round.judge.prompt[0].content;
        assert!(judged.contains(&format!("Answer 0 (the current best):\n{best}")));
        for (i, alt) in round.alternatives.iter().enumerate() {
            assert!(judged.contains(&format!("Answer {}:\n{}", i + 1, alt.answer)));
        }
        // The recorded choice is what the judge's answer says (or the recorded fallback).
        assert_eq!(
            round.choice,
            pyagent_model::parse_choice(&round.judge.answer, 2)
        );
        best = match round.choice.picked {
            0 => best,
            i => round.alternatives[i as usize - 1].answer.clone(),
        };
        assert_eq!(round.best, best);
    }
    assert_eq!(first.answer, best);

    // Usage: every exchange counted, and the total is their sum.
    let mut sum = pyagent_model::Usage::default();
    for e in exchanges(&first) {
        assert!(
            e.usage.prompt_tokens > 0 && e.usage.completion_tokens > 0,
            "{e:?}"
        );
        sum += e.usage;
    }
    assert_eq!(first.usage, sum);

    // Random weights answer gibberish: the judge's verdicts cannot be read, and CoRT keeps the
    // current best, saying so. (Should a verdict ever parse, the check above still holds.)
    let fallbacks = first
        .rounds
        .iter()
        .filter(|r| r.choice.how == ChoiceHow::Fallback)
        .count() as u32;
    assert_eq!(first.fallbacks, fallbacks);
    assert!(
        fallbacks >= 1,
        "the tiny model's judge produced a readable choice every round:\n{record_json}"
    );
    for round in first
        .rounds
        .iter()
        .filter(|r| r.choice.how == ChoiceHow::Fallback)
    {
        assert_eq!(round.choice.picked, 0);
        assert!(!round.choice.explanation.is_empty());
    }

    // Same seed, same server: the same record, prompt for prompt and token for token.
    let second = cort(&c, &task, settings).await.expect("cort again");
    assert_eq!(second.without_timings(), first.without_timings());

    // Another server process, from a fresh model file: no cache or state carried over, and
    // still the same record. It wants an API key: without one it answers 401.
    let other = start_server(&python, Some("sk-test-key")).await;
    let keyless = client(other.port, "/v1", deterministic())
        .chat(&[Message::user("x")])
        .await
        .unwrap_err();
    assert_eq!(keyless.code(), "PA743", "{keyless}");
    assert!(keyless.to_string().contains("401"), "{keyless}");
    let keyed = client_with_key(other.port, "/v1", deterministic(), Some("sk-test-key"));
    let third = cort(&keyed, &task, settings)
        .await
        .expect("cort on another server");
    assert_eq!(
        third.endpoint,
        format!("http://127.0.0.1:{}/v1", other.port)
    );
    let mut third = third.without_timings();
    third.endpoint = first.endpoint.clone();
    assert_eq!(third, first.without_timings());
    drop(other);

    // The record is the step's JSON output and reads back whole.
    let back: CortRecord = serde_json::from_str(&record_json).unwrap();
    assert_eq!(back, first);
    eprintln!(
        "cort record: {} requests, {} tokens, {} fallbacks",
        first.requests, first.usage.total_tokens, first.fallbacks
    );
    drop(server);
}
