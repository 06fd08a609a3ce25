// Pairs made at run time from the spec's fields, several pairs, keys as
// String; a producer with no default pairs connects through a builder.
use postage::prelude::*;

struct Jobs {
    exchange: Exchange,
    key: String,
}

#[producer(eks = [
    (self.exchange.clone(), self.key.clone()),
    (Exchange::new(format!("{}-audit", self.exchange.name()), ExchangeKind::Fanout), ""),
])]
impl Jobs {
    fn build_message_run(&self, job: u32) -> MessageCommand {
        MessageCommand::new("run", job)
    }
}

struct Bare;

#[producer]
impl Bare {
    fn build_message_ping(&self) -> MessageCommand {
        MessageCommand::new("ping", serde_json::json!({}))
    }
}

async fn use_it(connection: &Connection) -> postage::Result<()> {
    let jobs = Jobs {
        exchange: Exchange::new("jobs", ExchangeKind::Direct),
        key: "jobs-rk".into(),
    };
    let jobs = jobs
        .connect_with(Producer::builder().fingerprint(Fingerprint::new("jobs", "application")), connection)
        .await?;
    jobs.message_run(7).await?;
    let bare = Bare
        .connect_with(Producer::builder().ek(Exchange::direct("ping"), "ping-rk"), connection)
        .await?;
    bare.message_ping().await
}

fn main() {
    let _ = use_it;
    let jobs = Jobs { exchange: Exchange::direct("jobs"), key: "k".into() };
    assert_eq!(jobs.default_eks().len(), 2);
    assert!(Bare.default_eks().is_empty());
}
