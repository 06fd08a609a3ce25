//! Wire format: what Python Postage sends decodes, what we send is exactly
//! the documented JSON.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use postage::prelude::*;
use postage::{ContentError, DecodeError, Encoder, JsonEncoder};
use serde_json::{Value, json};

fn decode(body: &str) -> Result<Message, DecodeError> {
    JsonEncoder.decode(body.as_bytes())
}

#[test]
fn python_command_decodes() {
    // As Python 2 json.dumps writes it: every non-ASCII character escaped,
    // the pid a string.
    let body = r#"{"category": "message", "content": {"parameters": "caf\u00e9 \u2603"},
        "fingerprint": {"host": "vm", "name": "echo_send", "pid": "4242", "type": "application",
        "user": "root", "vhost": "/"}, "name": "echo", "type": "command", "version": "2",
        "_reserved": {}}"#;
    let message = decode(body).expect("decodes");
    assert_eq!(message.kind, "command");
    assert_eq!(message.name, "echo");
    assert_eq!(message.category, Category::Message);
    assert_eq!(message.version, "2");
    assert_eq!(message.content.parameters(), Some(&json!("café ☃")));
    let sender = message.sender();
    assert_eq!(sender.name.as_deref(), Some("echo_send"));
    assert_eq!(sender.kind.as_deref(), Some("application"));
    assert_eq!(sender.pid, Some(4242));
    assert_eq!(sender.host.as_deref(), Some("vm"));
}

#[test]
fn lenient_where_python_is_loose() {
    // version as a number, numeric fingerprint values, "None" strings,
    // no _reserved.
    let body = r#"{"type": "command", "name": "x", "category": "rpc", "version": 2,
        "fingerprint": {"name": "None", "type": "None", "pid": 77, "host": "h"},
        "content": {}}"#;
    let message = decode(body).expect("decodes");
    assert_eq!(message.version, "2");
    assert!(message.is_rpc());
    let sender = message.sender();
    assert_eq!(sender.name, None);
    assert_eq!(sender.kind, None);
    assert_eq!(sender.pid, Some(77));
    assert_eq!(sender.user, None);
    assert!(message.reserved.is_empty());
}

#[test]
fn python_reply_decodes() {
    // A Python processor's reply: fingerprint {}, all three content keys.
    let success = decode(
        r#"{"type": "result", "name": "none", "category": "message", "version": "2",
        "fingerprint": {}, "content": {"type": "success", "value": "RPC message received",
        "message": ""}, "_reserved": {}}"#,
    )
    .expect("decodes");
    assert!(success.is_ok());
    assert_eq!(
        success.outcome(),
        Ok(Outcome::Success {
            value: json!("RPC message received"),
            message: String::new()
        })
    );
    let exception = decode(
        r#"{"type": "result", "name": "none", "category": "message", "version": "2",
        "fingerprint": {}, "content": {"type": "exception", "value": "TimeoutError",
        "message": "no answer"}, "_reserved": {}}"#,
    )
    .expect("decodes");
    assert!(!exception.is_ok());
    assert_eq!(
        exception.outcome(),
        Ok(Outcome::Exception {
            name: "TimeoutError".into(),
            message: "no answer".into()
        })
    );
    let error = decode(
        r#"{"type": "result", "name": "none", "category": "message", "version": "2",
        "fingerprint": {}, "content": {"type": "error", "value": null, "message": "bad"},
        "_reserved": {}}"#,
    )
    .expect("decodes");
    assert!(!error.is_ok());
    assert_eq!(
        error.outcome(),
        Ok(Outcome::Error {
            message: "bad".into()
        })
    );
}

fn encoded(message: impl IntoMessage) -> Value {
    let body = JsonEncoder
        .encode(&message.into_message())
        .expect("encodes");
    serde_json::from_slice(&body).expect("JSON")
}

#[test]
fn every_kind_encodes_as_documented() {
    assert_eq!(
        encoded(MessageCommand::new("echo", "A test message")),
        json!({"type": "command", "name": "echo", "category": "message", "version": "2",
               "fingerprint": {}, "content": {"parameters": "A test message"}, "_reserved": {}})
    );
    assert_eq!(
        encoded(RpcCommand::new("sum", json!({"a": 1, "b": 2}))),
        json!({"type": "command", "name": "sum", "category": "rpc", "version": "2",
               "fingerprint": {}, "content": {"parameters": {"a": 1, "b": 2}}, "_reserved": {}})
    );
    assert_eq!(
        encoded(MessageStatus::new("online")),
        json!({"type": "status", "name": "online", "category": "message", "version": "2",
               "fingerprint": {}, "content": {}, "_reserved": {}})
    );
    assert_eq!(
        encoded(MessageResult::new(5))["content"],
        json!({"type": "success", "value": 5, "message": ""})
    );
    assert_eq!(
        encoded(MessageResultError::new("bad input"))["content"],
        json!({"type": "error", "value": null, "message": "bad input"})
    );
    assert_eq!(
        encoded(MessageResultException::new("ValueError", "boom"))["content"],
        json!({"type": "exception", "value": "ValueError", "message": "boom"})
    );
    let result = encoded(MessageResult::with_message(true, "done"));
    assert_eq!(
        (result["type"].clone(), result["name"].clone()),
        (json!("result"), json!("none"))
    );
    assert_eq!(
        encoded(GenericMessage::new(
            vec![json!(1), json!("str")],
            serde_json::Map::new()
        )),
        json!({"type": "none", "name": "none", "category": "message", "version": "2",
               "fingerprint": {}, "content": {"args": [1, "str"]}, "_reserved": {}})
    );
    let mut kwds = serde_json::Map::new();
    kwds.insert("values".into(), json!([1, 2]));
    assert_eq!(
        encoded(GenericMessage::new(Vec::new(), kwds))["content"],
        json!({"kwds": {"values": [1, 2]}})
    );
}

#[test]
fn fingerprint_is_sent_as_strings() {
    let fp = Fingerprint::new("svc", "controller");
    let map = fp.as_map();
    for key in ["name", "type", "pid", "host", "user", "vhost"] {
        assert!(map[key].is_string(), "{key} is {:?}", map[key]);
    }
    assert_eq!(map["pid"], std::process::id().to_string());
    let anonymous = Fingerprint::anonymous().as_map();
    assert_eq!(anonymous["name"], "None");
    assert_eq!(anonymous["type"], "None");
    let (name, kind, pid, ..) = fp.as_tuple();
    assert_eq!(
        (name, kind, pid),
        (Some("svc"), Some("controller"), Some(std::process::id()))
    );
}

#[test]
fn round_trip_keeps_everything() {
    let message: Message = MessageCommand::new("echo", json!({"nested": [1, "☃", null]})).into();
    let message = message.with_fingerprint(&Fingerprint::new("a", "b"));
    let body = JsonEncoder.encode(&message).expect("encodes");
    assert_eq!(JsonEncoder.decode(&body), Ok(message));
}

#[test]
fn bad_bodies_are_typed_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"{", "Syntax"),
        (b"", "Syntax"),
        (b"\xff\xfe{}", "Syntax"),
        (b"[1, 2]", "NotAnObject"),
        (b"42", "NotAnObject"),
        (b"null", "NotAnObject"),
        (br#"{"type": "command", "name": "x", "category": "message"}"#, "Malformed"),
        (br#"{"type": 1, "name": "x", "category": "message", "content": {}}"#, "Malformed"),
        (br#"{"type": "command", "name": "x", "category": "broadcast", "content": {}}"#, "Malformed"),
        (br#"{"type": "command", "name": "x", "category": "message", "content": "text"}"#, "Malformed"),
        (br#"{"type": "command", "name": "x", "category": "message", "content": {}, "version": []}"#, "Malformed"),
    ];
    for (body, expected) in cases {
        let error = JsonEncoder.decode(body).expect_err("must fail");
        let kind = format!("{error:?}");
        assert!(
            kind.starts_with(expected),
            "{:?}: expected {expected}, got {kind}",
            String::from_utf8_lossy(body)
        );
        assert!(!error.to_string().is_empty());
    }
}

#[test]
fn outcome_of_non_result_is_an_error() {
    let message: Message = MessageCommand::new("x", json!({})).into();
    assert!(matches!(
        message.outcome(),
        Err(ContentError::NotAResult(_))
    ));
    assert!(message.is_ok(), "non-results are true, as in Python");
}

#[test]
fn typed_parameters() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Sum {
        a: i64,
        b: i64,
    }
    let message: Message = RpcCommand::new("sum", json!({"a": 1, "b": 2})).into();
    assert_eq!(
        message.content.parameters_as::<Sum>(),
        Ok(Sum { a: 1, b: 2 })
    );
    let bad: Message = RpcCommand::new("sum", json!({"a": "one"})).into();
    assert!(matches!(
        bad.content.parameters_as::<Sum>(),
        Err(ContentError::Parameters(_))
    ));
}
