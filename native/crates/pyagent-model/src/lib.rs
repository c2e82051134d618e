//! pyagent-model: how a node talks to a core's model.
//!
//! A core's model is an OpenAI-compatible chat-completions endpoint (`POST <base>/chat/completions`),
//! which is what vLLM, SGLang, llama.cpp's server and Ollama all serve. [`ChatClient`] is a small
//! async client for it (plain HTTP/1.1 JSON over hyper, pooled connections, a connect timeout and a
//! whole-request timeout, every failure a coded [`ModelError`]). [`cort()`] runs CoRT, chain of
//! recursive thoughts, over such a client and returns a [`CortRecord`]: every prompt, every answer,
//! every choice and the token usage, which is the `report` a `cort` step outputs.
//!
//! The crate knows nothing of tasks, Raft or the node: the executor reads the core's entry of
//! `work.json` (`models.<core>`) as a [`WorkModel`], builds its [`ModelConfig`] with
//! [`WorkModel::config`], renders the step's inputs with
//! [`CortTask::from_inputs`], and stores the record as the step's output.

mod chat;
mod contract;
mod cort;
mod endpoint;
mod error;
mod replay;

pub use chat::{ChatClient, ChatReply, Message, ModelConfig, Role, Sampling, Usage};
pub use contract::{WorkApiKey, WorkModel, WorkSecretKey};
pub use cort::{
    cort, parse_choice, Choice, ChoiceHow, CortFailure, CortRecord, CortRound, CortSettings,
    CortTask, Exchange, Pick, CORT_RECORD_KIND,
};
pub use endpoint::Endpoint;
pub use error::ModelError;
pub use replay::{Chat, Replay};
