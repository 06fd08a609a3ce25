//! Micro-benchmarks of the per-message work that does not touch the
//! network: encoding, decoding and dispatching a ~250-byte Postage command,
//! and the producer's message building.
//!
//! `cargo bench -p postage-amqp --bench codec`

// criterion_group! writes an undocumented function; the body size goes to
// stderr next to criterion's own output.
#![allow(missing_docs, clippy::print_stderr)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use postage::message::WireFingerprint;
use postage::processor::{Handler, HandlerError, HandlerFn, HandlerResult};
use postage::{
    Category, Content, Encoder, Fingerprint, Handlers, JsonEncoder, Message, MessageCommand,
    MessageParts,
};
use serde::Deserialize;
use serde_json::json;

/// What the handler reads.
#[derive(Debug, Deserialize)]
struct Params {
    text: String,
    seq: u64,
}

struct Bench {
    handled: AtomicU64,
}

impl Bench {
    fn on_command(&self, content: &Content) -> HandlerResult {
        let params: Params = content
            .parameters_as()
            .map_err(|e| HandlerError::new("InvalidParameters", e.to_string()))?;
        black_box(params.text.len());
        self.handled.fetch_add(params.seq, Ordering::Relaxed);
        Ok(())
    }
}

impl Handlers for Bench {
    fn handlers() -> &'static [Handler<Self>] {
        const TABLE: &[Handler<Bench>] = &[
            Handler::message("command", "other", |this, content| {
                Box::pin(async move { this.on_command(&content) })
            }),
            Handler::message("command", "bench", |this, content| {
                Box::pin(async move { this.on_command(&content) })
            }),
            Handler::message("status", "online", |_, _| Box::pin(async { Ok(()) })),
        ];
        TABLE
    }
}

/// The processor's index: handler positions by type, then name.
type Index = HashMap<&'static str, HashMap<&'static str, Vec<usize>>>;

fn index() -> Index {
    let mut index: Index = HashMap::new();
    for (i, handler) in Bench::handlers().iter().enumerate() {
        index
            .entry(handler.kind)
            .or_default()
            .entry(handler.name)
            .or_default()
            .push(i);
    }
    index
}

/// Looks the message up and runs its handlers to completion (they do not
/// wait on anything, so one poll finishes them).
fn dispatch(index: &Index, this: &Arc<Bench>, message: Message) {
    let Some(positions) = index
        .get(message.kind.as_str())
        .and_then(|names| names.get(message.name.as_str()))
    else {
        return;
    };
    let table = Bench::handlers();
    let last = positions.len().saturating_sub(1);
    let mut content = Some(message.content);
    for (position, &i) in positions.iter().enumerate() {
        // As the processor does: the last handler gets the content itself.
        let Some(current) = (if position == last {
            content.take()
        } else {
            content.clone()
        }) else {
            break;
        };
        if let HandlerFn::Message(f) = &table[i].call {
            let result = f(this.clone(), current).now_or_never();
            black_box(result);
        }
    }
}

fn command() -> MessageCommand {
    MessageCommand::new("bench", json!({ "text": "quick brown fox", "seq": 7 }))
}

fn codec(c: &mut Criterion) {
    let encoder = JsonEncoder;
    let fingerprint = WireFingerprint::from(&Fingerprint::new("postage-bench", "application"));
    let message: Message = command().into();
    let mut full = message.clone();
    full.fingerprint = fingerprint.clone();
    let body = encoder
        .encode(&full)
        .unwrap_or_else(|e| panic!("encode: {e}"));
    eprintln!("body: {} bytes", body.len());

    c.bench_function("encode", |b| {
        b.iter(|| encoder.encode(black_box(&full)));
    });
    // What `Producer::send(MessageCommand::new(..))` encodes.
    c.bench_function("message_build_and_encode", |b| {
        b.iter(|| {
            let message: Message = command().into();
            encoder.encode_with_fingerprint(&message, black_box(&fingerprint))
        });
    });
    // What `Producer::command(..)` and `Producer::rpc(..)` encode.
    c.bench_function("producer_build_and_encode", |b| {
        b.iter(|| {
            let parameters = json!({ "text": "quick brown fox", "seq": 7 });
            let parts = MessageParts::command("bench", Category::Message, &parameters);
            encoder.encode_parts(&parts, black_box(&fingerprint))
        });
    });
    c.bench_function("decode", |b| {
        b.iter(|| encoder.decode(black_box(&body)));
    });
    let index = index();
    let this = Arc::new(Bench {
        handled: AtomicU64::new(0),
    });
    c.bench_function("dispatch", |b| {
        b.iter_batched(
            || full.clone(),
            |message| dispatch(&index, &this, message),
            criterion::BatchSize::SmallInput,
        );
    });
    c.bench_function("decode_and_dispatch", |b| {
        b.iter(|| {
            if let Ok(message) = encoder.decode(black_box(&body)) {
                dispatch(&index, &this, message);
            }
        });
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
