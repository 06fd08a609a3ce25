//! A command or a result borrowed from its parts: [`MessageParts`].

use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::content::ParametersOf;
use super::{Category, Content, Message, Outcome};

/// A command or a result borrowed from its parts, for an [`Encoder`] to
/// write without a [`Message`] being built and dropped for it: what
/// [`Producer::command`](crate::Producer::command),
/// [`Producer::rpc`](crate::Producer::rpc) and the [`Reply`](crate::Reply)
/// methods send.
///
/// [`Encoder`]: crate::Encoder
///
/// ```
/// use postage::message::{Message, MessageParts, MessageResult, Outcome};
///
/// let outcome = Outcome::Success { value: 5.into(), message: String::new() };
/// let message: Message = MessageResult::new(5).into();
/// assert_eq!(MessageParts::result(&outcome).to_message(), message);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MessageParts<'a> {
    /// The message type: `command` or `result`.
    pub kind: &'a str,
    /// The command, or `none` for a result.
    pub name: &'a str,
    /// Fire-and-forget or RPC.
    pub category: Category,
    /// The content.
    pub content: ContentParts<'a>,
}

/// The content of [`MessageParts`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ContentParts<'a> {
    /// A command's `{"parameters": ...}`.
    Parameters(&'a Value),
    /// A command's `{"parameters": ...}`, the parameters already written as
    /// JSON text: what [`Producer::command`](crate::Producer::command) and
    /// [`Producer::rpc`](crate::Producer::rpc) send, serialized straight
    /// from the caller's type.
    ParametersJson(&'a RawValue),
    // Not called `Result`: a public item of that name makes rustc spell
    // out `std::result::Result` in its messages.
    /// A result's `{"type": ..., "value": ..., "message": ...}`, as
    /// [`Message::outcome`] reads it.
    Answer(&'a Outcome),
}

impl<'a> MessageParts<'a> {
    /// A command `name` with these parameters.
    pub fn command(name: &'a str, category: Category, parameters: &'a Value) -> Self {
        MessageParts {
            kind: "command",
            name,
            category,
            content: ContentParts::Parameters(parameters),
        }
    }

    /// A command `name` whose parameters are already JSON text.
    pub fn command_json(name: &'a str, category: Category, parameters: &'a RawValue) -> Self {
        MessageParts {
            kind: "command",
            name,
            category,
            content: ContentParts::ParametersJson(parameters),
        }
    }

    /// The result saying `outcome`, as [`MessageResult`](crate::MessageResult),
    /// [`MessageResultError`](crate::MessageResultError) and [`MessageResultException`](crate::MessageResultException) build it.
    pub fn result(outcome: &'a Outcome) -> Self {
        MessageParts {
            kind: "result",
            name: "none",
            category: Category::Message,
            content: ContentParts::Answer(outcome),
        }
    }

    /// The message these parts make.
    pub fn to_message(&self) -> Message {
        let content = match self.content {
            ContentParts::Parameters(value) => Content::with_parameters(value),
            ContentParts::ParametersJson(raw) => Content::with_parameters(raw),
            ContentParts::Answer(outcome) => Message::from(outcome.clone()).content,
        };
        Message::new(self.kind, self.name, self.category, content)
    }
}

/// Parameters written as text equal the same text only.
impl PartialEq for ContentParts<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ContentParts::Parameters(a), ContentParts::Parameters(b)) => a == b,
            (ContentParts::ParametersJson(a), ContentParts::ParametersJson(b)) => {
                a.get() == b.get()
            }
            (ContentParts::Answer(a), ContentParts::Answer(b)) => a == b,
            _ => false,
        }
    }
}

/// Writes the content as the equivalent map would be written (keys sorted).
impl Serialize for ContentParts<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            ContentParts::Parameters(parameters) => ParametersOf {
                parameters: Some(parameters),
            }
            .serialize(serializer),
            ContentParts::ParametersJson(parameters) => ParametersOf {
                parameters: Some(parameters),
            }
            .serialize(serializer),
            ContentParts::Answer(outcome) => match outcome {
                Outcome::Success { value, message } => {
                    AnswerView::new("success", value, message).serialize(serializer)
                }
                Outcome::Error { message } => {
                    AnswerView::new("error", &Value::Null, message).serialize(serializer)
                }
                Outcome::Exception { name, message } => {
                    AnswerView::new("exception", name, message).serialize(serializer)
                }
            },
        }
    }
}

/// A result's content, its keys in the order of the equivalent map
/// (sorted).
#[derive(Serialize)]
struct AnswerView<'a, V> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    value: &'a V,
}

impl<'a, V> AnswerView<'a, V> {
    fn new(kind: &'a str, value: &'a V, message: &'a str) -> Self {
        AnswerView {
            message,
            kind,
            value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{DecodeError, EncodeError, Encoder, JsonEncoder};
    use crate::fingerprint::Fingerprint;
    use crate::message::{
        MessageResult, MessageResultError, MessageResultException, RpcCommand, WireFingerprint,
    };
    use serde_json::json;

    #[test]
    fn parts_encode_as_the_message_they_make() {
        let fingerprint = WireFingerprint::from(&Fingerprint::new("parts", "test"));
        let parameters = json!({"text": "h\u{e9}", "seq": 7});
        let outcomes = [
            Outcome::Success {
                value: parameters.clone(),
                message: String::new(),
            },
            Outcome::Error {
                message: "it failed".into(),
            },
            Outcome::Exception {
                name: "KeyError".into(),
                message: "missing".into(),
            },
        ];
        let text = serde_json::value::to_raw_value(&parameters).unwrap();
        let all = [
            MessageParts::command("sum", Category::Rpc, &parameters),
            MessageParts::command_json("sum", Category::Rpc, &text),
            MessageParts::result(&outcomes[0]),
            MessageParts::result(&outcomes[1]),
            MessageParts::result(&outcomes[2]),
        ];
        let built: [Message; 5] = [
            RpcCommand::new("sum", parameters.clone()).into(),
            RpcCommand::new("sum", parameters.clone()).into(),
            MessageResult::new(parameters.clone()).into(),
            MessageResultError::new("it failed").into(),
            MessageResultException::new("KeyError", "missing").into(),
        ];
        #[derive(Debug)]
        struct Plain;
        impl Encoder for Plain {
            fn content_type(&self) -> &str {
                "application/json"
            }
            fn encode(&self, message: &Message) -> Result<Vec<u8>, EncodeError> {
                JsonEncoder.encode(message)
            }
            fn decode(&self, body: &[u8]) -> Result<Message, DecodeError> {
                JsonEncoder.decode(body)
            }
        }
        for (parts, message) in all.iter().zip(built) {
            assert_eq!(parts.to_message(), message);
            let expected = JsonEncoder
                .encode_with_fingerprint(&message, &fingerprint)
                .unwrap();
            assert_eq!(
                JsonEncoder.encode_parts(parts, &fingerprint).unwrap(),
                expected
            );
            assert_eq!(Plain.encode_parts(parts, &fingerprint).unwrap(), expected);
        }
    }

    #[test]
    fn parameters_written_from_a_struct_decode_as_the_same_command() {
        #[derive(serde::Serialize)]
        struct Sum {
            text: &'static str,
            seq: u64,
        }
        let fingerprint = WireFingerprint::from(&Fingerprint::new("parts", "test"));
        let text = serde_json::value::to_raw_value(&Sum {
            text: "h\u{e9}",
            seq: 7,
        })
        .unwrap();
        let parts = MessageParts::command_json("sum", Category::Rpc, &text);
        let body = JsonEncoder.encode_parts(&parts, &fingerprint).unwrap();
        let message = JsonEncoder.decode(&body).unwrap();
        let expected: Message = RpcCommand::new("sum", json!({"text": "h\u{e9}", "seq": 7})).into();
        assert_eq!(message.content, expected.content);
        assert_eq!(
            (&message.kind, &message.name),
            (&expected.kind, &expected.name)
        );
        assert_eq!(parts.to_message(), expected);
    }
}
