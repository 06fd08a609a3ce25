//! The Postage side's shared pieces: connecting, parameters as a user
//! writes them, handler errors, and the body the consume runs read.

use postage::Encoder;
use postage::prelude::*;
use postage::processor::HandlerError;
use serde::Serialize;

use crate::common::{COMMAND, Res, TEXT, fingerprint};

pub(crate) async fn postage_connect(url: &str) -> Res<Connection> {
    Ok(Connection::connect(Config::from_url(url)?).await?)
}

pub(crate) fn invalid(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::new("InvalidParameters", e.to_string())
}

/// Postage parameters, as a user writes them: a struct of theirs,
/// serialized straight into the body (the lapin side serializes the same).
#[derive(Serialize)]
pub(crate) struct Parameters {
    text: &'static str,
    seq: u64,
}

pub(crate) fn params(seq: u64) -> Parameters {
    Parameters { text: TEXT, seq }
}

/// The body both consume runs read: a Postage command as Postage encodes it.
pub(crate) fn postage_body(seq: u64) -> Res<Vec<u8>> {
    let message = MessageCommand::new(COMMAND, serde_json::to_value(params(seq))?)
        .into_message()
        .with_fingerprint(&fingerprint());
    Ok(postage::JsonEncoder.encode(&message)?)
}
