//! A tool's result as the `mcp` step's output (type `json`).

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

/// The step's output: the result's `structuredContent` when the tool gives one (it is the
/// tool's typed result, per the MCP spec); else its content blocks, each text block parsed as
/// JSON when it is JSON (tools commonly return JSON as text) and kept as a string otherwise, any
/// other block (image, resource) as its MCP JSON; one block alone is the output itself, several
/// are an array.
///
/// `Err(message)` when the tool reported an error (`isError`), with its text.
pub fn step_output(result: CallToolResult) -> Result<Value, String> {
    if result.is_error == Some(true) {
        let text = texts(&result.content);
        return Err(if text.is_empty() {
            "the tool reported an error without a message".to_string()
        } else {
            text
        });
    }
    if let Some(structured) = result.structured_content {
        return Ok(structured);
    }
    let mut blocks: Vec<Value> = result.content.iter().map(block_value).collect();
    Ok(match blocks.len() {
        1 => blocks.remove(0),
        _ => Value::Array(blocks),
    })
}

fn block_value(block: &ContentBlock) -> Value {
    match block.as_text() {
        Some(t) => serde_json::from_str(&t.text).unwrap_or_else(|_| Value::String(t.text.clone())),
        None => serde_json::to_value(block).unwrap_or(Value::Null),
    }
}

/// The text blocks, joined: what an error says.
fn texts(content: &[ContentBlock]) -> String {
    content
        .iter()
        .filter_map(|b| b.as_text().map(|t| t.text.trim().to_string()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(v: Value) -> CallToolResult {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn structured_content_wins() {
        let r = result(json!({
            "content": [{"type": "text", "text": "{\"a\": 1}"}],
            "structuredContent": {"a": 1, "b": 2}
        }));
        assert_eq!(step_output(r).unwrap(), json!({"a": 1, "b": 2}));
    }

    #[test]
    fn json_text_is_parsed_and_plain_text_kept() {
        let one = result(json!({"content": [{"type": "text", "text": "{\"timezone\": \"UTC\"}"}]}));
        assert_eq!(step_output(one).unwrap(), json!({"timezone": "UTC"}));
        let two = result(json!({"content": [
            {"type": "text", "text": "On branch main"},
            {"type": "text", "text": "[1, 2]"}
        ]}));
        assert_eq!(step_output(two).unwrap(), json!(["On branch main", [1, 2]]));
        let none = result(json!({"content": []}));
        assert_eq!(step_output(none).unwrap(), json!([]));
    }

    #[test]
    fn is_error_is_an_error_with_the_text() {
        let r = result(json!({
            "content": [{"type": "text", "text": "Invalid timezone: Mars/Olympus"}],
            "isError": true
        }));
        assert_eq!(
            step_output(r).unwrap_err(),
            "Invalid timezone: Mars/Olympus"
        );
    }
}
