//! Each way a request fails gets its code, against real sockets on loopback: nothing listening
//! (PA741), a server that never answers (PA742), a non-2xx status (PA743), an answer that is not
//! a chat completion (PA744). The llama.cpp tests (llama_server.rs) cover the answers that work.

use std::time::{Duration, Instant};

use pyagent_model::{cort, ChatClient, CortSettings, CortTask, Endpoint, Message, ModelConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn client(base: &str, request_timeout: Duration) -> ChatClient {
    let mut config = ModelConfig::new("m", Endpoint::parse(base).unwrap());
    config.request_timeout = request_timeout;
    ChatClient::new(config)
}

/// Answers every connection with `response` once it has read the request's head.
async fn canned(response: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    // A port that was just free: bound, then released, so connecting is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = client(
        &format!("http://127.0.0.1:{port}/v1"),
        Duration::from_secs(30),
    )
    .chat(&[Message::user("hi")])
    .await
    .unwrap_err();
    assert_eq!(err.code(), "PA741", "{err}");
    assert!(err.is_transient());
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and holds the connection without a word.
    let hold = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(socket);
    });
    let started = Instant::now();
    let err = client(&format!("http://{addr}/v1"), Duration::from_millis(300))
        .chat(&[Message::user("hi")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PA742", "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the timeout did not cut the wait"
    );
    hold.abort();
}

#[tokio::test]
async fn an_error_status_keeps_the_body() {
    let base = canned(
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"error\":\"invalid api key\"}",
    )
    .await;
    let err = client(&base, Duration::from_secs(30))
        .chat(&[Message::user("hi")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PA743", "{err}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains("invalid api key"), "{err}");
}

#[tokio::test]
async fn an_answer_that_is_not_a_completion_is_bad_response() {
    let base = canned(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n<html></html>",
    )
    .await;
    let err = client(&base, Duration::from_secs(30))
        .chat(&[Message::user("hi")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PA744", "{err}");
}

#[tokio::test]
async fn cort_failing_midway_returns_what_it_did() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = client(
        &format!("http://127.0.0.1:{port}/v1"),
        Duration::from_secs(30),
    );
    let task = CortTask { prompt: "p".into() };
    let failure = cort(
        &c,
        &task,
        CortSettings {
            rounds: 2,
            alternatives: 2,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(failure.error.code(), "PA741");
    assert_eq!(failure.partial.requests, 0);
    assert!(failure.partial.initial.is_none());
    assert_eq!(failure.partial.prompt, "p");
}
