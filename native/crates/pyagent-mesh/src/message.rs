//! What travels on the mesh's topics, typed: a message that does not decode as its topic's type,
//! or is larger than the limit, is rejected before anything sees it (gossipsub's strict
//! validation checks the author's signature first).

use serde::{Deserialize, Serialize};

/// The topics of a swarm's mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Swarm events: membership seen, tasks placed and ended.
    Events,
    /// The world feed: lessons one node's tasks learned, for every other node.
    Feed,
    /// Keys of the end-to-end encryption (e2e.rs): Olm bundles and room keys.
    Keys,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Events, Topic::Feed, Topic::Keys];

    pub fn label(self) -> &'static str {
        match self {
            Topic::Events => "events",
            Topic::Feed => "feed",
            Topic::Keys => "keys",
        }
    }

    /// The gossipsub topic name: the swarm's name is part of it, so two swarms never mix.
    pub fn name(self, swarm: &str) -> String {
        format!("/pyagent/{swarm}/{}/1", self.label())
    }
}

/// A swarm event, as published on [`Topic::Events`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SwarmEvent {
    /// The author saw the Raft membership change to these voters and learners.
    Membership {
        voters: Vec<u64>,
        learners: Vec<u64>,
    },
    /// The author started running a task placed on it.
    TaskStarted {
        task: String,
        manifest: String,
        /// The task's span as a W3C `traceparent` (its trace and the task span), so that what a
        /// receiver does about the event joins the task's trace; empty when it has none.
        #[serde(default)]
        traceparent: String,
    },
    /// A task the author ran ended (`succeeded`, `failed`, `cancelled`).
    TaskEnded {
        task: String,
        outcome: String,
        #[serde(default)]
        traceparent: String,
    },
}

/// A lesson learned, as published on [`Topic::Feed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lesson {
    pub text: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The task it came from, if any.
    #[serde(default)]
    pub task: Option<String>,
}

/// One message of either topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Event(SwarmEvent),
    Lesson(Lesson),
}

impl Payload {
    pub fn topic(&self) -> Topic {
        match self {
            Payload::Event(_) => Topic::Events,
            Payload::Lesson(_) => Topic::Feed,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let encoded = match self {
            Payload::Event(e) => serde_json::to_vec(e),
            Payload::Lesson(l) => serde_json::to_vec(l),
        };
        encoded.expect("mesh payloads are plain data and always serialise")
    }

    /// Decodes a message received on `topic`; the error names what was wrong.
    pub fn decode(topic: Topic, data: &[u8]) -> Result<Payload, String> {
        match topic {
            Topic::Events => serde_json::from_slice(data).map(Payload::Event),
            Topic::Feed => serde_json::from_slice(data).map(Payload::Lesson),
            Topic::Keys => return Err("the keys topic carries no payloads".into()),
        }
        .map_err(|e| e.to_string())
    }
}

/// A message that passed validation, with the member who wrote (and signed) it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub from: u64,
    pub payload: Payload,
    /// Milliseconds since the Unix epoch when this node received it.
    pub received_ms: u64,
}

/// Direct messages between two members (request-response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// The lessons the peer holds, oldest first: a node that joins (or comes back) catches up
    /// with the world feed from a neighbour instead of waiting for new posts.
    RecentFeed { limit: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Response {
    RecentFeed { lessons: Vec<(u64, Lesson)> },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_other_shapes_are_refused() {
        let event = Payload::Event(SwarmEvent::TaskStarted {
            task: "t1".into(),
            manifest: "fix-bug".into(),
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        });
        assert_eq!(
            Payload::decode(Topic::Events, &event.encode()).unwrap(),
            event
        );
        let lesson = Payload::Lesson(Lesson {
            text: "pin the toolchain".into(),
            tags: vec![],
            task: None,
        });
        assert_eq!(
            Payload::decode(Topic::Feed, &lesson.encode()).unwrap(),
            lesson
        );
        assert!(Payload::decode(Topic::Feed, &event.encode()).is_err());
        assert!(Payload::decode(
            Topic::Events,
            br#"{"kind":"task-started","task":"t","manifest":"m","run":"rm -rf /"}"#
        )
        .is_err());
        assert!(Payload::decode(Topic::Events, b"\xff").is_err());
    }

    #[test]
    fn topics_are_named_after_the_swarm() {
        assert_eq!(Topic::Feed.name("laptop"), "/pyagent/laptop/feed/1");
        assert_ne!(Topic::Events.name("a"), Topic::Events.name("b"));
    }
}
