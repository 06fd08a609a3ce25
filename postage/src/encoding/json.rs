//! [`JsonEncoder`]: UTF-8 JSON, as Python Postage writes it.

use std::sync::Arc;

use serde::Serialize;

use super::{DecodeError, EncodeError, Encoder};
use crate::message::{Category, Message, MessageParts, VERSION, WireFingerprint};

/// A message with a borrowed fingerprint, its content `C` and `_reserved`
/// field `R` borrowed or built from parts; serializes exactly as
/// [`Message`] does (same keys, same order).
#[derive(Serialize)]
struct MessageView<'a, C, R> {
    #[serde(rename = "type")]
    kind: &'a str,
    name: &'a str,
    category: Category,
    version: &'a str,
    fingerprint: &'a WireFingerprint,
    content: C,
    #[serde(rename = "_reserved")]
    reserved: R,
}

/// An empty object.
#[derive(Serialize)]
struct Empty {}

/// Room for a typical command in one allocation (serde_json starts at 128
/// bytes and doubles).
const BODY_CAPACITY: usize = 512;

/// The default encoder: UTF-8 JSON, `application/json`, as Python Postage.
///
/// Reads `\uXXXX` escapes (Python escapes all non-ASCII text) and writes
/// UTF-8.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonEncoder;

impl Encoder for JsonEncoder {
    fn content_type(&self) -> &str {
        "application/json"
    }

    fn encode(&self, message: &Message) -> Result<Vec<u8>, EncodeError> {
        serde_json::to_vec(message).map_err(EncodeError::new)
    }

    fn decode(&self, body: &[u8]) -> Result<Message, DecodeError> {
        serde_json::from_slice(body).map_err(|e| classify(body, e))
    }

    fn encode_with_fingerprint(
        &self,
        message: &Message,
        fingerprint: &WireFingerprint,
    ) -> Result<Vec<u8>, EncodeError> {
        let view = MessageView {
            kind: &message.kind,
            name: &message.name,
            category: message.category,
            version: &message.version,
            fingerprint,
            content: &message.content,
            reserved: &message.reserved,
        };
        to_body(&view)
    }

    fn encode_parts(
        &self,
        parts: &MessageParts<'_>,
        fingerprint: &WireFingerprint,
    ) -> Result<Vec<u8>, EncodeError> {
        to_body(&MessageView {
            kind: parts.kind,
            name: parts.name,
            category: parts.category,
            version: VERSION,
            fingerprint,
            content: parts.content,
            reserved: Empty {},
        })
    }
}

/// A command written straight from the caller's parameters (no map, no
/// intermediate text), byte for byte as [`MessageParts::command_json`] of
/// their JSON text: what producers send when their encoder is
/// [`JsonEncoder`].
///
/// [`MessageParts::command_json`]: crate::message::MessageParts::command_json
pub(crate) fn encode_command(
    name: &str,
    category: Category,
    parameters: &impl Serialize,
    fingerprint: &WireFingerprint,
) -> Result<Vec<u8>, EncodeError> {
    #[derive(Serialize)]
    struct Parameters<'a, T> {
        parameters: &'a T,
    }
    to_body(&MessageView {
        kind: "command",
        name,
        category,
        version: VERSION,
        fingerprint,
        content: Parameters { parameters },
        reserved: Empty {},
    })
}

fn to_body(view: &impl Serialize) -> Result<Vec<u8>, EncodeError> {
    let mut body = Vec::with_capacity(BODY_CAPACITY);
    serde_json::to_writer(&mut body, view).map_err(EncodeError::new)?;
    Ok(body)
}

fn classify(body: &[u8], error: serde_json::Error) -> DecodeError {
    use serde_json::error::Category as C;
    match error.classify() {
        C::Syntax | C::Eof | C::Io => DecodeError::Syntax(Arc::new(error)),
        C::Data => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            if first == Some(&b'{') {
                DecodeError::Malformed(Arc::new(error))
            } else {
                DecodeError::NotAnObject
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn a_command_written_from_its_parameters_is_the_command_of_their_text() {
        #[derive(Serialize)]
        struct Sum<'a> {
            text: &'a str,
            terms: [i64; 2],
        }
        let fingerprint = WireFingerprint::from(&crate::Fingerprint::new("json", "test"));
        // The same command from the parameters' JSON text.
        let via_text = |text: Box<serde_json::value::RawValue>, category| {
            let parts = MessageParts::command_json("sum", category, &text);
            JsonEncoder.encode_parts(&parts, &fingerprint).unwrap()
        };
        let typed = Sum {
            text: "h\u{e9} \"q\"",
            terms: [2, 3],
        };
        assert_eq!(
            encode_command("sum", Category::Rpc, &typed, &fingerprint).unwrap(),
            via_text(
                serde_json::value::to_raw_value(&typed).unwrap(),
                Category::Rpc
            )
        );
        let value = serde_json::json!({"text": "x", "terms": [1]});
        let direct = encode_command("sum", Category::Message, &value, &fingerprint).unwrap();
        let text = serde_json::value::to_raw_value(&value).unwrap();
        assert_eq!(direct, via_text(text, Category::Message));
        // A `json!` value is sent byte for byte as before.
        let message: Message = crate::message::MessageCommand::new("sum", value.clone()).into();
        let before = JsonEncoder
            .encode_with_fingerprint(&message, &fingerprint)
            .unwrap();
        assert_eq!(direct, before);
    }

    #[test]
    fn encoding_with_a_fingerprint_matches_setting_it() {
        use crate::fingerprint::Fingerprint;
        use crate::message::MessageCommand;

        let sender = Fingerprint::new("bench", "h\u{e9}te");
        let message: Message =
            MessageCommand::new("echo", serde_json::json!({"text": "h\u{e9}", "n": [1, 2]})).into();
        let mut expected = message.clone();
        expected.fingerprint = sender.as_map().into();
        let expected = JsonEncoder.encode(&expected).unwrap();
        // Encoded once from the fingerprint, or serialized from a map.
        let fingerprint = WireFingerprint::from(&sender);
        for field in [&fingerprint, &sender.as_map().into()] {
            let fast = JsonEncoder
                .encode_with_fingerprint(&message, field)
                .unwrap();
            assert_eq!(fast, expected);
        }

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
        assert_eq!(
            Plain
                .encode_with_fingerprint(&message, &fingerprint)
                .unwrap(),
            expected
        );
    }

    #[test]
    fn a_decoded_fingerprint_is_read_on_demand_and_written_back_unchanged() {
        let body = br#"{"type":"command","name":"echo","category":"message","version":"2","fingerprint":{"pid": 7, "name":"a\u00e9"},"content":{},"_reserved":{}}"#;
        let message = JsonEncoder.decode(body).unwrap();
        let encoded = String::from_utf8(JsonEncoder.encode(&message).unwrap()).unwrap();
        // Unread, the field goes out as it came (spacing and escapes kept).
        assert!(
            encoded.contains(r#""fingerprint":{"pid": 7, "name":"a\u00e9"}"#),
            "{encoded}"
        );
        assert_eq!(message.fingerprint["name"], "a\u{e9}");
        assert_eq!(message.sender().pid, Some(7));
        let mut expected = Map::new();
        expected.insert("pid".into(), 7.into());
        expected.insert("name".into(), "a\u{e9}".into());
        assert_eq!(message.fingerprint, expected.clone().into());
        assert_eq!(message.fingerprint.clone().into_inner(), expected);

        let not_an_object = br#"{"type":"command","name":"echo","category":"message","fingerprint":[1],"content":{}}"#;
        assert!(matches!(
            JsonEncoder.decode(not_an_object),
            Err(DecodeError::Malformed(reason)) if reason.to_string().contains("fingerprint must be an object")
        ));
        // Nested past the parser's depth limit: the message is still read,
        // its fingerprint reads as empty.
        let deep = format!(
            r#"{{"type":"command","name":"echo","category":"message","fingerprint":{{"x":{}{}}},"content":{{}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let message = JsonEncoder.decode(deep.as_bytes()).unwrap();
        assert!(message.fingerprint.is_empty());
        assert_eq!(message.sender().name, None);
    }

    #[test]
    fn classifies_errors() {
        let e = JsonEncoder;
        assert!(matches!(
            e.decode(b"{not json"),
            Err(DecodeError::Syntax(_))
        ));
        assert!(matches!(e.decode(b"[1,2]"), Err(DecodeError::NotAnObject)));
        assert!(matches!(e.decode(b"\"x\""), Err(DecodeError::NotAnObject)));
        assert!(matches!(e.decode(b"{}"), Err(DecodeError::Malformed(_))));
        assert!(matches!(e.decode(b"\xff\xfe"), Err(DecodeError::Syntax(_))));
        assert!(matches!(e.decode(b""), Err(DecodeError::Syntax(_))));
    }
}
