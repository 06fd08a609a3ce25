// Build methods with borrowed, generic and pattern parameters, and every
// kind of message; doc comments carry over; other methods stay alone.
use postage::prelude::*;
use serde_json::Value;

struct Status;

#[producer(eks = [(Exchange::topic("events"), "status.rk")])]
impl Status {
    /// Sends a status.
    fn build_message_status(&self, status: &str) -> MessageStatus {
        MessageStatus::new(status)
    }

    fn build_message_tagged<'a, T: Into<Value>>(&self, tag: &'a str, value: T) -> Message {
        MessageCommand::new(tag, value.into()).into()
    }

    fn build_message_pair(&self, (a, b): (i64, i64), mut note: String) -> GenericMessage {
        note.push('!');
        GenericMessage::new(vec![a.into(), b.into(), note.into()], Default::default())
    }

    fn build_rpc_lookup(&self, keys: &[String], r#type: impl Into<String>) -> RpcCommand {
        RpcCommand::new("lookup", serde_json::json!({ "keys": keys, "type": r#type.into() }))
    }

    fn helper(&self) -> u8 {
        1
    }
}

async fn use_it(connection: &Connection) -> postage::Result<()> {
    let status = Status.connect(connection).await?;
    status.message_status("online").await?;
    let tag = String::from("t");
    status.message_tagged(&tag, 3).await?;
    status.message_pair((1, 2), "n".into()).await?;
    let keys = vec!["a".to_owned()];
    let _reply = status.rpc_lookup(&keys, "k").await?;
    assert_eq!(status.spec().helper(), 1);
    Ok(())
}

fn main() {
    let _ = use_it;
    let api: Vec<String> = Status::API.iter().map(ToString::to_string).collect();
    assert_eq!(
        api,
        [
            "message status(status: &str)",
            "message tagged(tag: &'a str, value: T)",
            "message pair((a, b): (i64, i64), note: String)",
            "rpc lookup(keys: &[String], type: impl Into<String>)",
        ]
    );
}
