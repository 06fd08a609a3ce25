//! A message's payload: [`Content`], read from its text or as a map.

use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::ContentError;
use super::lazy::LazyObject;

/// A message's payload: always a JSON object on the wire.
///
/// Commands keep their arguments under `parameters`; results under `type`,
/// `value` and `message`. It reads and changes like a `Map<String, Value>`
/// (through `Deref` and `DerefMut`) and is built from one with `.into()`.
/// Decoded content is kept as the JSON text it arrived as until it is read
/// as a map: [`parameters_as`](Content::parameters_as) decodes the
/// parameters straight from that text, without building a map first.
///
/// ```
/// use postage::message::Content;
/// use serde_json::json;
///
/// let mut content = Content::from(json!({"parameters": {"a": 2}}).as_object().unwrap().clone());
/// assert_eq!(content.parameters(), Some(&json!({"a": 2})));
/// content.insert("extra".into(), json!(true));
/// assert_eq!(content.len(), 2);
/// ```
#[derive(Clone, Default)]
pub struct Content(LazyObject);

/// The `parameters` of a content object: read straight from its text, or
/// written from parts.
#[derive(Deserialize, Serialize)]
pub(super) struct ParametersOf<T> {
    #[serde(default = "Option::default")]
    pub(super) parameters: Option<T>,
}

impl Content {
    /// The `parameters` of a command, if any.
    pub fn parameters(&self) -> Option<&Value> {
        self.get("parameters")
    }

    /// The `parameters` of a command decoded into `T` (a missing
    /// `parameters` key reads as `null`).
    pub fn parameters_as<T: DeserializeOwned>(&self) -> Result<T, ContentError> {
        if let Some(raw) = self.0.unparsed()
            && let Ok(of) = serde_json::from_str::<ParametersOf<T>>(raw.get())
        {
            if let Some(parameters) = of.parameters {
                return Ok(parameters);
            }
        } else if let Some(value) = self.parameters() {
            // Parsed already, or not readable from the text as `T` (a
            // mismatch, a duplicate key): the map decides, and words the
            // error.
            return T::deserialize(value).map_err(ContentError::parameters);
        }
        T::deserialize(&Value::Null).map_err(ContentError::parameters)
    }

    /// The content as received, while it was not read as a map.
    pub(crate) fn unparsed(&self) -> Option<&RawValue> {
        self.0.unparsed()
    }

    /// Consumes the content, giving the map.
    pub fn into_inner(self) -> Map<String, Value> {
        self.0.into_map()
    }
}

impl Content {
    /// `{"parameters": parameters}`, written as JSON text at once. A value
    /// whose `Serialize` fails makes a content that reads as empty and
    /// fails to encode, saying why: the send that carries it fails.
    pub(crate) fn with_parameters<T: Serialize + ?Sized>(parameters: &T) -> Self {
        let of = ParametersOf {
            parameters: Some(parameters),
        };
        match serde_json::value::to_raw_value(&of) {
            Ok(raw) => Content(LazyObject::from_raw(raw)),
            Err(e) => Content(LazyObject::failed(format!(
                "the parameters could not be written as JSON: {e}"
            ))),
        }
    }
}

impl Deref for Content {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Self::Target {
        self.0.map()
    }
}

impl DerefMut for Content {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.map_mut()
    }
}

impl From<Map<String, Value>> for Content {
    fn from(map: Map<String, Value>) -> Self {
        Content(LazyObject::from_map(map))
    }
}

impl PartialEq for Content {
    fn eq(&self, other: &Self) -> bool {
        self.0.map() == other.0.map()
    }
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Content").field(self.0.map()).finish()
    }
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut content = LazyObject::deserialize(d, "content")?;
        // The text is valid JSON, but the parser accepts in text it skips
        // what it refuses in text it reads into a map. Where the text could
        // hold such a thing, it is read into a map at once, so that a
        // message whose content cannot be read is refused here, as it
        // always was, and never reaches a handler with its content empty.
        if let Some(raw) = &content.raw
            && may_not_parse(raw.get())
        {
            let map: Map<String, Value> = serde_json::from_str(raw.get())
                .map_err(|e| serde::de::Error::custom(format!("content: {e}")))?;
            content.map = OnceLock::from(map);
        }
        Ok(Content(content))
    }
}

/// Could this valid JSON text hold what the parser skips but does not
/// read into a map: nesting past its recursion limit (128), a `\u` escape
/// in the surrogate range (a lone surrogate), or a number out of range (an
/// exponent, or more than 300 digits in a row)? False only when none can
/// be there; some texts that are fine say true and are parsed at once (a
/// digit before an `e` inside a string, as in Python's `\u00e9`, or a
/// `\ud` escape, as in the surrogate pairs of an emoji).
fn may_not_parse(json: &str) -> bool {
    /// Bytes looked at per step: fixed-size lanes the compiler turns into
    /// vector instructions.
    const LANES: usize = 16;
    let bytes = json.as_bytes();
    // Each byte with the two after it (the last two bytes, `}` and the one
    // before it, cannot start anything that matters).
    let lane = |a: u8, b: u8, c: u8| -> (u8, bool) {
        let bracket = u8::from(a == b'{' || a == b'[');
        let exponent = a.is_ascii_digit() & (b | 0x20 == b'e');
        let surrogate = (a == b'\\') & (b == b'u') & (c | 0x20 == b'd');
        (bracket, exponent | surrogate)
    };
    let ends = bytes.len().saturating_sub(2);
    let (mut brackets, mut suspect) = (0usize, false);
    let mut at = 0;
    while at + LANES <= ends {
        let window = |offset: usize| {
            bytes
                .get(at + offset..)
                .and_then(<[u8]>::first_chunk::<LANES>)
        };
        let (Some(a), Some(b), Some(c)) = (window(0), window(1), window(2)) else {
            break;
        };
        let (mut count, mut flag) = (0u8, false);
        for i in 0..LANES {
            let (bracket, odd) = lane(a[i], b[i], c[i]);
            count += bracket;
            flag |= odd;
        }
        brackets += usize::from(count);
        suspect |= flag;
        at += LANES;
    }
    for i in at..ends {
        let (bracket, odd) = lane(bytes[i], bytes[i + 1], bytes[i + 2]);
        brackets += usize::from(bracket);
        suspect |= odd;
    }
    let long_number = || {
        bytes.len() > 300
            && bytes
                .split(|b| !b.is_ascii_digit())
                .any(|digits| digits.len() > 300)
    };
    brackets >= 128 || suspect || long_number()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{DecodeError, Encoder, JsonEncoder};
    use crate::message::Message;
    use serde_json::json;

    fn decoded(content: &str) -> Message {
        let body = format!(
            r#"{{"type":"command","name":"echo","category":"message","content":{content}}}"#
        );
        JsonEncoder.decode(body.as_bytes()).unwrap()
    }

    #[test]
    fn received_content_is_read_from_its_text_until_changed() {
        let text = r#"{"parameters": {"a": 2, "b": [1, "x\"}"]}, "z": null}"#;
        let mut message = decoded(text);
        #[derive(Deserialize, PartialEq, Debug)]
        struct P {
            a: u8,
            b: (u8, String),
        }
        let p: P = message.content.parameters_as().unwrap();
        assert_eq!(
            p,
            P {
                a: 2,
                b: (1, "x\"}".into())
            }
        );
        assert!(message.content.unparsed().is_some());
        // Unchanged, the content goes out as it came, spacing included.
        let body = String::from_utf8(JsonEncoder.encode(&message).unwrap()).unwrap();
        assert!(body.contains(text), "{body}");
        // Read as a map: the same answers, and still written as received.
        assert_eq!(
            message.content.parameters(),
            Some(&json!({"a": 2, "b": [1, "x\"}"]}))
        );
        assert!(message.content.unparsed().is_none());
        assert_eq!(message.content.parameters_as::<P>().unwrap(), p);
        let body = String::from_utf8(JsonEncoder.encode(&message).unwrap()).unwrap();
        assert!(body.contains(text), "{body}");
        // Changed: the map is written.
        message.content.insert("c".into(), json!(3));
        let body = JsonEncoder.encode(&message).unwrap();
        let again = JsonEncoder.decode(&body).unwrap();
        assert_eq!(again.content["c"], 3);
        assert_eq!(again.content["z"], Value::Null);
        assert_eq!(again, message);
    }

    #[test]
    fn parameters_missing_or_null_read_as_null_either_way() {
        for text in [r#"{}"#, r#"{"parameters": null}"#] {
            let message = decoded(text);
            assert_eq!(message.content.parameters_as::<Option<u8>>().unwrap(), None);
            assert_eq!(message.content.parameters_as::<()>().unwrap(), ());
            assert!(message.content.parameters_as::<u8>().is_err());
            let parsed = Content::from(message.content.clone().into_inner());
            assert_eq!(parsed.parameters_as::<Option<u8>>().unwrap(), None);
            assert!(parsed.parameters_as::<u8>().is_err());
        }
        // A mismatch is worded as from the map (no position in the text).
        let message = decoded(r#"{"parameters": "text"}"#);
        match message.content.parameters_as::<u8>() {
            Err(ContentError::Parameters(cause)) => {
                assert_eq!(
                    cause.to_string(),
                    "invalid type: string \"text\", expected u8"
                );
            }
            other => panic!("{other:?}"),
        }
        // A duplicate key: the last wins, as in the map (and in Python).
        let message = decoded(r#"{"parameters": 1, "parameters": 2}"#);
        assert_eq!(message.content.parameters_as::<u8>(), Ok(2));
    }

    #[test]
    fn content_the_parser_cannot_read_is_refused_at_decoding() {
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let long = "9".repeat(400);
        // Each of these is valid JSON the parser skips without complaint
        // but refuses to read into a map: the message must fail to decode,
        // as when its content was read into a map at once.
        let refused = [
            format!(r#"{{"p":{}}}"#, nested(200)),
            r#"{"p": 1e400}"#.to_owned(),
            r#"{"p": -2.5E+999}"#.to_owned(),
            format!(r#"{{"p": {long}}}"#),
            r#"{"p": "\ud800"}"#.to_owned(),
            r#"{"p": "x\uDC00y"}"#.to_owned(),
        ];
        for content in &refused {
            let body = format!(
                r#"{{"type":"command","name":"echo","category":"message","content":{content}}}"#
            );
            let whole = serde_json::from_str::<Value>(&body);
            assert!(whole.is_err(), "{content}: the parser reads it");
            assert!(
                matches!(
                    JsonEncoder.decode(body.as_bytes()),
                    Err(DecodeError::Malformed(_))
                ),
                "{content}: decoded"
            );
        }
        // Look-alikes that are fine are read, from the text or the map.
        let fine = [
            format!(r#"{{"p":{}}}"#, nested(100)),
            r#"{"p": 1e300, "q": "1e400", "r": "\u00e9\ud83d\ude00"}"#.to_owned(),
            format!(r#"{{"p": "{long}", "q": 12345678901234567890123}}"#),
            format!(r#"{{"p": "{}"}}"#, "[{".repeat(200)),
        ];
        for content in &fine {
            let message = decoded(content);
            let expected = serde_json::from_str::<Map<String, Value>>(content).unwrap();
            assert_eq!(*message.content, expected, "{content}");
        }
        assert!(!may_not_parse(
            r#"{"parameters": {"text": "quick brown fox", "seq": 7}}"#
        ));
        assert!(!may_not_parse(r#"{"text": "a\"b\\c\n\u00f1"}"#));
        // Found at every position, in the vector steps and after them.
        for pad in 0..40 {
            let pad = " ".repeat(pad);
            for odd in ["1e5", "\"\\udc00\"", "2E-3"] {
                let text = format!(r#"{{"p":[{pad}{odd}, 1, 2, 3, 4, 5, 6, 7, 8]}}"#);
                assert!(may_not_parse(&text), "{text}");
                let short = format!(r#"{{"p":{pad}{odd}}}"#);
                assert!(may_not_parse(&short), "{short}");
            }
            assert!(!may_not_parse(&format!(
                r#"{{"p":[{pad}15, 1, 2, 3, 4, 5, 6, 7, 8]}}"#
            )));
        }
        // A false alarm: Python's escape of é looks like an exponent.
        assert!(may_not_parse(r#"{"text": "caf\u00e9"}"#));
    }
}
