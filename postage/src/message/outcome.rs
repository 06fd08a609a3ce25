//! What a result message says: [`Outcome`], read with
//! [`Message::outcome`] and written as a result message.

use serde::Deserialize;
use serde_json::Value;

use super::{ContentError, Message, MessageResult, MessageResultError, MessageResultException};

impl Message {
    /// Reads a result message: [`Outcome::Success`], [`Outcome::Error`] or
    /// [`Outcome::Exception`]. Fails when this is not a well-formed result.
    pub fn outcome(&self) -> Result<Outcome, ContentError> {
        if !self.is_result() {
            return Err(ContentError::NotAResult(format!(
                "message type is {:?}, not \"result\"",
                self.kind
            )));
        }
        // Read straight from the received text when the content was not
        // parsed yet (a duplicate key there falls back to the map: last wins).
        let fields = self
            .content
            .unparsed()
            .and_then(|raw| serde_json::from_str::<ResultFields>(raw.get()).ok())
            .unwrap_or_else(|| ResultFields {
                kind: self.content.get("type").cloned(),
                value: self.content.get("value").cloned(),
                message: self.content.get("message").cloned(),
            });
        let text = |field: Option<Value>| match field {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
        };
        match fields.kind.as_ref().and_then(Value::as_str) {
            Some("success") => Ok(Outcome::Success {
                value: fields.value.unwrap_or(Value::Null),
                message: text(fields.message),
            }),
            Some("error") => Ok(Outcome::Error {
                message: text(fields.message),
            }),
            Some("exception") => Ok(Outcome::Exception {
                name: text(fields.value),
                message: text(fields.message),
            }),
            other => Err(ContentError::NotAResult(format!(
                "result content type is {other:?}, expected success, error or exception"
            ))),
        }
    }
}

impl Message {
    /// A result's `type` if it is `success`, `error` or `exception`, read
    /// without the rest of its content; `None` otherwise.
    pub(crate) fn result_kind(&self) -> Option<&'static str> {
        #[derive(Deserialize)]
        struct Kind<'a> {
            #[serde(rename = "type", borrow)]
            kind: Option<std::borrow::Cow<'a, str>>,
        }
        if !self.is_result() {
            return None;
        }
        let known = |kind: &str| {
            ["success", "error", "exception"]
                .into_iter()
                .find(|known| *known == kind)
        };
        match self.content.unparsed() {
            // As Postage (`message` first) and Python Postage (`type`
            // first) write results.
            Some(raw) => leading_type(raw.get()).and_then(known).or_else(|| {
                serde_json::from_str::<Kind<'_>>(raw.get())
                    .ok()
                    .and_then(|k| k.kind)
                    .and_then(|kind| known(&kind))
            }),
            None => self
                .content
                .get("type")
                .and_then(Value::as_str)
                .and_then(known),
        }
    }
}

/// The value of an object's `type` key, found among its leading keys
/// whose values are strings, when it is a string without escapes; `None`
/// when this scan cannot tell (the caller then parses).
fn leading_type(json: &str) -> Option<&str> {
    let mut at = skip_space(json, 0);
    if json.as_bytes().get(at) != Some(&b'{') {
        return None;
    }
    loop {
        let (key, after) = leading_string(json, skip_space(json, at + 1))?;
        at = skip_space(json, after);
        if json.as_bytes().get(at) != Some(&b':') {
            return None;
        }
        let (value, after) = leading_string(json, skip_space(json, at + 1))?;
        let value = &json[value];
        if &json[key] == "type" {
            return (!value.contains('\\')).then_some(value);
        }
        at = skip_space(json, after);
        if json.as_bytes().get(at) != Some(&b',') {
            return None;
        }
    }
}

/// The position of the first byte at or after `at` that is not JSON
/// whitespace.
fn skip_space(json: &str, at: usize) -> usize {
    at + json.as_bytes()[at.min(json.len())..]
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count()
}

/// The JSON string at `at`: the range of its text (escapes left as they
/// are) and the position after its closing quote.
fn leading_string(json: &str, at: usize) -> Option<(std::ops::Range<usize>, usize)> {
    let bytes = json.as_bytes();
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at + 1;
    loop {
        match bytes.get(i)? {
            b'"' => return Some((at + 1..i, i + 1)),
            // An escape: the backslash and the (ASCII) character it escapes.
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// The keys of a result's content.
#[derive(Deserialize)]
struct ResultFields {
    #[serde(rename = "type", default)]
    kind: Option<Value>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
}

/// What a result message says.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The call worked and produced `value`.
    Success {
        /// The returned value.
        value: Value,
        /// Optional text.
        message: String,
    },
    /// The call failed in an expected way.
    Error {
        /// What went wrong.
        message: String,
    },
    /// The call raised (Python) or panicked / failed unexpectedly (Rust).
    Exception {
        /// The exception's name, e.g. `TimeoutError`.
        name: String,
        /// Its text.
        message: String,
    },
}

/// The result message saying this outcome.
///
/// ```
/// use postage::message::{Message, MessageResultError, Outcome};
///
/// let message = Message::from(Outcome::Error { message: "no".into() });
/// assert_eq!(message, MessageResultError::new("no").into());
/// assert_eq!(message.outcome().unwrap(), Outcome::Error { message: "no".into() });
/// ```
impl From<Outcome> for Message {
    fn from(outcome: Outcome) -> Message {
        match outcome {
            Outcome::Success { value, message } => {
                MessageResult::with_message(value, message).into()
            }
            Outcome::Error { message } => MessageResultError::new(message).into(),
            Outcome::Exception { name, message } => {
                MessageResultException::new(name, message).into()
            }
        }
    }
}

impl Outcome {
    /// `Ok(value)` for a success, `Err(self)` otherwise.
    pub fn into_value(self) -> Result<Value, Outcome> {
        match self {
            Outcome::Success { value, .. } => Ok(value),
            other => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{Encoder, JsonEncoder};

    #[test]
    fn result_outcome_is_read_from_text_or_map_alike() {
        let texts = [
            r#"{"type": "success", "value": {"n": 5}, "message": "ok"}"#,
            r#"{"type": "error", "value": null, "message": "bad"}"#,
            r#"{"type": "exception", "value": "KeyError", "message": 7}"#,
            r#"{"type": "exception", "value": "A", "value": "B", "message": ""}"#,
            r#"{"type": 3}"#,
        ];
        for text in texts {
            let body = format!(
                r#"{{"type":"result","name":"none","category":"message","content":{text}}}"#
            );
            let lazy = JsonEncoder.decode(body.as_bytes()).unwrap();
            let parsed = lazy.clone();
            parsed.content.len();
            assert!(parsed.content.unparsed().is_none());
            assert_eq!(lazy.outcome(), parsed.outcome(), "{text}");
        }
        let duplicate = format!(
            r#"{{"type":"result","name":"none","category":"message","content":{}}}"#,
            texts[3]
        );
        assert_eq!(
            JsonEncoder
                .decode(duplicate.as_bytes())
                .unwrap()
                .outcome()
                .unwrap(),
            Outcome::Exception {
                name: "B".into(),
                message: String::new()
            }
        );
    }

    #[test]
    fn a_result_kind_is_read_with_or_without_the_fast_path() {
        let cases = [
            (
                r#"{"type": "success", "value": 1, "message": ""}"#,
                Some("success"),
            ),
            (r#" { "type" : "error" , "message": "bad"}"#, Some("error")),
            (
                r#"{"value": "KeyError", "type": "exception"}"#,
                Some("exception"),
            ),
            (r#"{"type": "succ\u0065ss"}"#, Some("success")),
            // As Postage writes results: `message` first.
            (
                r#"{"message":"it \"failed\"\\","type":"error","value":null}"#,
                Some("error"),
            ),
            (
                r#"{"message":"","type":"success","value":{"type":"error"}}"#,
                Some("success"),
            ),
            (
                r#"{"message":"x","value":2,"type":"exception"}"#,
                Some("exception"),
            ),
            (r#"{"type": "other"}"#, None),
            (r#"{"type": 3}"#, None),
            (r#"{}"#, None),
        ];
        for (content, kind) in cases {
            let body = format!(
                r#"{{"type":"result","name":"none","category":"message","content":{content}}}"#
            );
            let lazy = JsonEncoder.decode(body.as_bytes()).unwrap();
            assert_eq!(lazy.result_kind(), kind, "{content}");
            let parsed = lazy.clone();
            parsed.content.len();
            assert_eq!(parsed.result_kind(), kind, "{content} (as a map)");
        }
        let command = JsonEncoder
            .decode(br#"{"type":"command","name":"x","category":"message","content":{"type":"success"}}"#)
            .unwrap();
        assert_eq!(command.result_kind(), None);
        // The scan gives up, without reading past the end, on what it
        // cannot tell.
        for text in [
            r#"{"message":"\"#,
            r#"{"message":"a\"#,
            r#"{"value":1}"#,
            "{",
            "",
        ] {
            assert_eq!(leading_type(text), None, "{text}");
        }
    }
}
