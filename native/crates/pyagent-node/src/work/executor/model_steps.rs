//! `cort` steps: chain-of-recursive-thoughts with the core's model, or the answers a scenario
//! replays.

use std::collections::BTreeMap;

use super::{StepError, StepJob};
use crate::work::scenario::TaskStubs;

impl StepJob {
    /// Chain-of-recursive-thoughts rounds with the core's model (docs/models.md): the step's
    /// `report` is the whole record (every prompt, answer, choice and token count).
    pub(super) async fn cort(
        &self,
        inputs: &BTreeMap<String, serde_json::Value>,
        at: &super::spans::Attempt<'_>,
    ) -> Result<serde_json::Value, StepError> {
        let params = &self.step.params;
        let count = |key: &str| {
            params
                .get(key)
                .and_then(|v| v.as_u64())
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(3)
        };
        let settings = pyagent_model::CortSettings {
            rounds: count("rounds"),
            alternatives: count("alternatives"),
        };
        let prompt = params.get("prompt").and_then(|p| p.as_str());
        let task = pyagent_model::CortTask::from_inputs(prompt, inputs);
        let result = match self.stubs()? {
            // A scenario's task replays the answers it was given; it never asks a model.
            Some(stubs) => {
                let replay = stubs.model.get_or_init(|| {
                    let config = self.model_config().unwrap_or_else(|_| replay_config());
                    pyagent_model::Replay::new(config, stubs.model_answers.clone())
                });
                pyagent_model::cort(replay, &task, settings).await
            }
            None => {
                let client = self.model_client()?;
                let traced = super::spans::TracedChat {
                    inner: &client,
                    telemetry: &self.ctx.shared.telemetry,
                    parent: at.place(),
                };
                pyagent_model::cort(&traced, &task, settings).await
            }
        };
        match result {
            Ok(record) => Ok(serde_json::to_value(record).unwrap_or(serde_json::Value::Null)),
            Err(failure) => Err(StepError {
                code: failure.error.code(),
                message: format!(
                    "{} (after {} successful requests)",
                    failure.error, failure.partial.requests
                ),
                retryable: failure.error.is_transient(),
                output: None,
            }),
        }
    }

    /// The task's stubs when it is a scenario's (checked when its runner started).
    pub(super) fn stubs(&self) -> Result<Option<&TaskStubs>, StepError> {
        match self.stubs.as_ref() {
            Ok(s) => Ok(s.as_ref()),
            Err(e) => Err(StepError::new("PA729", e.clone())),
        }
    }

    pub(super) fn model_config(&self) -> Result<pyagent_model::ModelConfig, StepError> {
        let core = &self.task.core;
        let work =
            self.ctx.work.as_ref().map_err(|e| {
                StepError::new("PA726", format!("the work file is unreadable: {e}"))
            })?;
        let model = work.models.get(core).ok_or_else(|| {
            StepError::new(
                "PA740",
                format!(
                    "core {core:?} has no model in the work file (a `model:` with an endpoint)"
                ),
            )
        })?;
        model
            .config(|name| std::env::var(name).ok())
            .map_err(|e| StepError::new(e.code(), e.to_string()))
    }

    pub(super) fn model_client(&self) -> Result<pyagent_model::ChatClient, StepError> {
        let core = &self.task.core;
        let mut clients = self
            .ctx
            .models
            .lock()
            .map_err(|_| StepError::new("PA740", "the model clients are poisoned"))?;
        if let Some(c) = clients.get(core) {
            return Ok(c.clone());
        }
        let client = pyagent_model::ChatClient::new(self.model_config()?);
        clients.insert(core.clone(), client.clone());
        Ok(client)
    }
}

/// The model settings a replaying task records when its core's model cannot be configured here.
fn replay_config() -> pyagent_model::ModelConfig {
    let endpoint =
        pyagent_model::Endpoint::parse("http://scenario.invalid/v1").expect("a valid constant URL");
    pyagent_model::ModelConfig::new("scenario-replay", endpoint)
}
