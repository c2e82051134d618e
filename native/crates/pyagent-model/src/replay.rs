//! What CoRT asks of a model ([`Chat`]), served by a real endpoint ([`ChatClient`]) or by
//! recorded answers ([`Replay`]): a scenario's "digital twin" of a task replays the answers it
//! was given instead of asking a model (docs/scenarios.md).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use crate::{ChatClient, ChatReply, Message, ModelConfig, ModelError, Usage};

/// One chat exchange with a model, and the model's settings (for the record).
pub trait Chat: Sync {
    fn config(&self) -> &ModelConfig;
    fn chat(
        &self,
        messages: &[Message],
    ) -> impl Future<Output = Result<ChatReply, ModelError>> + Send;
}

impl Chat for ChatClient {
    fn config(&self) -> &ModelConfig {
        ChatClient::config(self)
    }

    fn chat(
        &self,
        messages: &[Message],
    ) -> impl Future<Output = Result<ChatReply, ModelError>> + Send {
        ChatClient::chat(self, messages)
    }
}

/// Answers given in advance, one per request, in order; no usage, no time.
pub struct Replay {
    config: ModelConfig,
    answers: Mutex<VecDeque<String>>,
}

impl Replay {
    pub fn new(config: ModelConfig, answers: impl IntoIterator<Item = String>) -> Self {
        Replay {
            config,
            answers: Mutex::new(answers.into_iter().collect()),
        }
    }

    fn next(&self) -> Option<String> {
        self.answers.lock().ok()?.pop_front()
    }
}

impl Chat for Replay {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn chat(
        &self,
        _messages: &[Message],
    ) -> impl Future<Output = Result<ChatReply, ModelError>> + Send {
        let answer = self.next().ok_or_else(|| ModelError::BadResponse {
            endpoint: self.config.endpoint.base().to_string(),
            detail: "the scenario's model answers ran out (give one per request: 1 + rounds x \
                     (alternatives + 1) per cort step)"
                .into(),
        });
        std::future::ready(answer.map(|content| ChatReply {
            content,
            finish_reason: Some("stop".into()),
            usage: Usage::default(),
            elapsed: Duration::ZERO,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{cort, CortSettings, CortTask, Endpoint};

    #[tokio::test]
    async fn cort_replays_the_answers_in_order_and_says_when_they_run_out() {
        let config = ModelConfig::new(
            "replay",
            Endpoint::parse("http://replay.invalid/v1").unwrap(),
        );
        let answers = ["first", "alt a", "alt b", "CHOICE: 2\nbetter"].map(String::from);
        let replay = Replay::new(config.clone(), answers);
        let task = CortTask::from_inputs(Some("q"), &Default::default());
        let settings = CortSettings {
            rounds: 1,
            alternatives: 2,
        };
        let record = cort(&replay, &task, settings).await.unwrap();
        assert_eq!(record.requests, 4);
        assert_eq!(record.answer, "alt b");
        let short = Replay::new(config, ["only".to_string()]);
        let failure = cort(&short, &task, settings).await.unwrap_err();
        assert_eq!(failure.error.code(), "PA744");
        assert_eq!(failure.partial.requests, 1);
    }
}
