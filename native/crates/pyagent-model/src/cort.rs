//! CoRT, chain of recursive thoughts (after github.com/PhialsBasement/Chain-of-Recursive-Thoughts):
//! the model answers, then for each round writes alternatives to its current best answer, judges
//! them against it and keeps the winner, which the next round tries to beat.
//!
//! Kept from the original: the first answer (round 0), alternatives that see the task and the
//! current best, a judging prompt that lists the current best and the numbered alternatives and
//! asks for the choice on the first line and a one-sentence reason after it, "keep the current"
//! as the choice when the verdict cannot be read. Changed: the number of rounds is the step's
//! `rounds` (the original asked the model, which is neither reproducible nor bounded); every
//! request carries the model's declared sampling settings unchanged (the original raised the
//! temperature per alternative, 0.7 + 0.1 i, which a seeded, temperature-0 run cannot do; here
//! alternatives differ by their prompt, "alternative i of n, a different approach"); and every
//! prompt, answer, choice and token count is recorded, not printed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::chat::{Message, Sampling, Usage};
use crate::error::ModelError;
use crate::replay::Chat;

/// `kind` of a [`CortRecord`], versioned like the other contracts.
pub const CORT_RECORD_KIND: &str = "pyagent.dev/cort/v1alpha1";
/// The judge's reason is kept to this many characters (it is asked for one sentence).
const EXPLANATION_CHARS: usize = 500;

/// What to reason about: an instruction and the step's inputs by name.
#[derive(Debug, Clone, PartialEq)]
pub struct CortTask {
    pub prompt: String,
}

impl CortTask {
    /// The step's prompt: the instruction, then each input under a `## <name>` heading, in name
    /// order (text values as they are, other JSON values pretty-printed). The same inputs always
    /// give the same prompt, which a seeded run needs.
    pub fn from_inputs(
        instruction: Option<&str>,
        inputs: &BTreeMap<String, serde_json::Value>,
    ) -> Self {
        let mut prompt = instruction
            .filter(|s| !s.trim().is_empty())
            .unwrap_or("Reason about the inputs below and give your best answer.")
            .trim()
            .to_string();
        for (name, value) in inputs {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string()),
            };
            prompt.push_str(&format!("\n\n## {name}\n{}", text.trim_end()));
        }
        Self { prompt }
    }
}

/// The step's settings (`rounds`, `alternatives`, both at least 1; `alternatives` per round).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CortSettings {
    pub rounds: u32,
    pub alternatives: u32,
}

/// One request and its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exchange {
    /// The messages sent.
    pub prompt: Vec<Message>,
    pub answer: String,
    pub finish_reason: Option<String>,
    pub usage: Usage,
    /// Wall time of the request as the client saw it (connection, the model's time, transfer).
    pub elapsed_us: u64,
}

/// Which answer a round kept: 0 is the current best, `i` the i-th alternative (from 1).
pub type Pick = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChoiceHow {
    /// Read from the judge's answer.
    Parsed,
    /// The judge's answer named no valid choice: the current best was kept.
    Fallback,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Choice {
    pub picked: Pick,
    pub how: ChoiceHow,
    /// The judge's reason (parsed), or why its answer could not be read (fallback).
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CortRound {
    /// From 1; round 0 is the record's `initial` answer.
    pub round: u32,
    pub alternatives: Vec<Exchange>,
    pub judge: Exchange,
    pub choice: Choice,
    /// The answer this round kept: the input of the next round.
    pub best: String,
    /// Wall time of the whole round, so that what the rounds cost beyond the model's own time
    /// (the sum of the exchanges' `elapsedUs`) can be seen.
    pub elapsed_us: u64,
}

/// The `report` of a `cort` step: everything that was asked and answered, and the final answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CortRecord {
    pub kind: String,
    pub model: String,
    pub endpoint: String,
    pub sampling: Sampling,
    pub settings: CortSettings,
    /// The task prompt every request starts from.
    pub prompt: String,
    /// Round 0: the first answer to the prompt.
    pub initial: Option<Exchange>,
    pub rounds: Vec<CortRound>,
    /// The answer of the last completed round (the initial one before any).
    pub answer: String,
    /// Rounds whose judge's choice could not be read.
    pub fallbacks: u32,
    /// Summed over every request.
    pub usage: Usage,
    pub requests: u32,
    pub elapsed_us: u64,
}

impl CortRecord {
    /// The record with every time set to zero: what two runs with the same seed must agree on.
    pub fn without_timings(&self) -> CortRecord {
        let mut r = self.clone();
        r.elapsed_us = 0;
        if let Some(i) = r.initial.as_mut() {
            i.elapsed_us = 0;
        }
        for round in &mut r.rounds {
            round.elapsed_us = 0;
            round.judge.elapsed_us = 0;
            round.alternatives.iter_mut().for_each(|a| a.elapsed_us = 0);
        }
        r
    }
}

/// CoRT stopped at a failed request; `partial` holds what was done before it.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct CortFailure {
    pub error: ModelError,
    pub partial: Box<CortRecord>,
}

/// Runs CoRT: an initial answer, then `settings.rounds` rounds of `settings.alternatives`
/// alternatives and a judgement. Requests are sequential (a seeded run must not depend on how a
/// server batches concurrent requests). `rounds` and `alternatives` of 0 are taken as 1.
pub async fn cort<C: Chat>(
    client: &C,
    task: &CortTask,
    settings: CortSettings,
) -> Result<CortRecord, CortFailure> {
    let settings = CortSettings {
        rounds: settings.rounds.max(1),
        alternatives: settings.alternatives.max(1),
    };
    let started = Instant::now();
    let config = client.config();
    let mut record = CortRecord {
        kind: CORT_RECORD_KIND.to_string(),
        model: config.name.clone(),
        endpoint: config.endpoint.base().to_string(),
        sampling: config.sampling.clone(),
        settings,
        prompt: task.prompt.clone(),
        initial: None,
        rounds: Vec::new(),
        answer: String::new(),
        fallbacks: 0,
        usage: Usage::default(),
        requests: 0,
        elapsed_us: 0,
    };
    let result = run_rounds(client, &mut record).await;
    record.elapsed_us = micros(started.elapsed());
    match result {
        Ok(()) => Ok(record),
        Err(error) => Err(CortFailure {
            error,
            partial: Box::new(record),
        }),
    }
}

async fn run_rounds<C: Chat>(client: &C, record: &mut CortRecord) -> Result<(), ModelError> {
    let initial = ask(client, vec![Message::user(record.prompt.clone())], record).await?;
    record.answer = initial.answer.clone();
    record.initial = Some(initial);
    for round in 1..=record.settings.rounds {
        let round_started = Instant::now();
        let n = record.settings.alternatives;
        let mut alternatives = Vec::with_capacity(n as usize);
        for i in 1..=n {
            let prompt = alternative_prompt(&record.prompt, &record.answer, i, n);
            alternatives.push(ask(client, vec![Message::user(prompt)], record).await?);
        }
        let answers: Vec<&str> = alternatives.iter().map(|a| a.answer.as_str()).collect();
        let judge_prompt = judge_prompt(&record.prompt, &record.answer, &answers);
        let judge = ask(client, vec![Message::user(judge_prompt)], record).await?;
        let choice = parse_choice(&judge.answer, n);
        if choice.how == ChoiceHow::Fallback {
            record.fallbacks += 1;
        }
        let best = match choice.picked {
            0 => record.answer.clone(),
            i => alternatives[i as usize - 1].answer.clone(),
        };
        record.answer = best.clone();
        record.rounds.push(CortRound {
            round,
            alternatives,
            judge,
            choice,
            best,
            elapsed_us: micros(round_started.elapsed()),
        });
    }
    Ok(())
}

async fn ask<C: Chat>(
    client: &C,
    prompt: Vec<Message>,
    record: &mut CortRecord,
) -> Result<Exchange, ModelError> {
    let reply = client.chat(&prompt).await?;
    record.requests += 1;
    record.usage += reply.usage;
    Ok(Exchange {
        prompt,
        answer: reply.content,
        finish_reason: reply.finish_reason,
        usage: reply.usage,
        elapsed_us: micros(reply.elapsed),
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The original's alternative prompt, numbered so that a temperature-0 run still gets `n`
/// different requests.
pub(crate) fn alternative_prompt(task: &str, best: &str, i: u32, n: u32) -> String {
    format!(
        "Original task:\n{task}\n\nCurrent best answer:\n{best}\n\n\
         Write alternative answer {i} of {n}: an answer that might be better than the current one. \
         Be creative and take a different approach from the current answer. \
         Reply with the answer only."
    )
}

pub(crate) fn judge_prompt(task: &str, best: &str, alternatives: &[&str]) -> String {
    let n = alternatives.len();
    let mut listed = format!("Answer 0 (the current best):\n{best}");
    for (i, alt) in alternatives.iter().enumerate() {
        listed.push_str(&format!("\n\nAnswer {}:\n{alt}", i + 1));
    }
    format!(
        "Original task:\n{task}\n\nEvaluate these answers and choose the best one.\n\n{listed}\n\n\
         Which answer best addresses the original task? Consider accuracy, clarity and completeness.\n\
         On the first line write only `CHOICE: ` followed by 0 (keep the current best) or a number from 1 to {n}.\n\
         Then, on a new line, explain your choice in one sentence."
    )
}

/// Reads the judge's choice among the current best (0) and `n` alternatives.
///
/// In order: the first line with `choice` followed by a number or `current` (`CHOICE: 2`,
/// `**Choice** - current`); else the first non-empty line if it is `current` or starts with a
/// number (`2`, `2.`, `Answer 2`, the original's form). A number outside 0..=n, or nothing
/// readable, keeps the current best with [`ChoiceHow::Fallback`] and says why: the same answer
/// always gives the same choice.
pub fn parse_choice(answer: &str, n: u32) -> Choice {
    let lines: Vec<&str> = answer
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tagged = lines
        .iter()
        .enumerate()
        .find_map(|(at, line)| tagged_choice(line).map(|c| (at, c)));
    let found = tagged.or_else(|| {
        lines
            .first()
            .and_then(|line| bare_choice(line))
            .map(|c| (0, c))
    });
    let Some((at, picked)) = found else {
        return fallback(format!(
            "no choice in the judge's answer: {:?}",
            clip(answer, 120)
        ));
    };
    if picked > n {
        return fallback(format!("the judge chose {picked}, outside 0..={n}"));
    }
    let explanation = lines
        .iter()
        .skip(at + 1)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    Choice {
        picked,
        how: ChoiceHow::Parsed,
        explanation: clip(&explanation, EXPLANATION_CHARS),
    }
}

fn fallback(why: String) -> Choice {
    Choice {
        picked: 0,
        how: ChoiceHow::Fallback,
        explanation: why,
    }
}

/// `choice` (any case, any markup around it), then separators, then `current` or a number.
fn tagged_choice(line: &str) -> Option<u32> {
    let lower = line.to_ascii_lowercase();
    let at = lower.find("choice")?;
    let rest =
        lower[at + "choice".len()..].trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    leading_pick(rest)
}

/// The original's form: the first line is `current` or begins with a number (after markup or
/// the word `answer`).
fn bare_choice(line: &str) -> Option<u32> {
    let lower = line.to_ascii_lowercase();
    let rest = lower.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let rest = rest
        .strip_prefix("answer")
        .map(|r| r.trim_start_matches(|c: char| !c.is_ascii_alphanumeric()))
        .unwrap_or(rest);
    leading_pick(rest)
}

fn leading_pick(text: &str) -> Option<u32> {
    if text.starts_with("current") {
        return Some(0);
    }
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    // A number too large for u32 is still a number: out of range, so a recorded fallback.
    Some(digits.parse().unwrap_or(u32::MAX))
}

fn clip(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(picked: u32) -> (u32, ChoiceHow) {
        (picked, ChoiceHow::Parsed)
    }

    fn pick(answer: &str, n: u32) -> (u32, ChoiceHow) {
        let c = parse_choice(answer, n);
        (c.picked, c.how)
    }

    #[test]
    fn reads_the_asked_form_and_the_originals() {
        assert_eq!(pick("CHOICE: 2\nIt is shorter.", 3), parsed(2));
        assert_eq!(pick("**Choice:** 1", 3), parsed(1));
        assert_eq!(pick("choice - current\nnothing beats it", 3), parsed(0));
        assert_eq!(pick("Let me think.\nCHOICE: 3", 3), parsed(3));
        assert_eq!(pick("current\nbecause", 2), parsed(0));
        assert_eq!(pick("2. The second one", 2), parsed(2));
        assert_eq!(pick("Answer 1", 2), parsed(1));
        assert_eq!(pick("  0  ", 2), parsed(0));
    }

    #[test]
    fn explanation_is_what_follows_the_choice() {
        let c = parse_choice("CHOICE: 1\nIt is\nclearer.", 2);
        assert_eq!(c.explanation, "It is clearer.");
    }

    #[test]
    fn gibberish_and_out_of_range_keep_the_current_best_and_say_so() {
        for answer in [
            "",
            "   \n",
            "the best is the second",
            "xq zz 9",
            "CHOICE: 7",
            "99999999999999",
        ] {
            let c = parse_choice(answer, 2);
            assert_eq!((c.picked, c.how), (0, ChoiceHow::Fallback), "{answer:?}");
            assert!(!c.explanation.is_empty());
        }
    }

    #[test]
    fn parsing_is_deterministic() {
        let answer = "hmm\nChoice: 1\nok";
        assert_eq!(parse_choice(answer, 2), parse_choice(answer, 2));
    }

    #[test]
    fn task_prompt_lists_inputs_in_name_order() {
        let mut inputs = BTreeMap::new();
        inputs.insert("trace".to_string(), serde_json::json!({"exit": 1}));
        inputs.insert("issue".to_string(), serde_json::json!("tests fail\n"));
        let t = CortTask::from_inputs(Some("Explain the failure."), &inputs);
        assert_eq!(
            t.prompt,
            "Explain the failure.\n\n## issue\ntests fail\n\n## trace\n{\n  \"exit\": 1\n}"
        );
        assert!(CortTask::from_inputs(None, &BTreeMap::new())
            .prompt
            .starts_with("Reason about"));
    }

    #[test]
    fn judge_prompt_numbers_the_current_best_zero() {
        let p = judge_prompt("T", "B", &["X", "Y"]);
        assert!(p.contains("Answer 0 (the current best):\nB\n\nAnswer 1:\nX\n\nAnswer 2:\nY"));
        assert!(p.contains("from 1 to 2"));
    }
}
