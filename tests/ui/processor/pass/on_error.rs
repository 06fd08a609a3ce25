use std::time::Duration;

use postage::prelude::*;
use postage::processor::HandlerError;

struct Jobs;

const DELAYS: &[Duration] = &[Duration::from_secs(1), Duration::from_secs(5)];

#[processor]
impl Jobs {
    #[handler("command", "resize", on_error = OnError::retry(&[
        Duration::from_secs(1),
        Duration::from_secs(30),
    ]))]
    async fn resize(&self, Params(path): Params<String>) -> Result<(), HandlerError> {
        if path.is_empty() {
            return Err(HandlerError::permanent("InvalidPath", "empty"));
        }
        Ok(())
    }

    #[handler("command", "bill", on_error = OnError::Park,)]
    async fn bill(&self, _content: Content) {}

    #[full_body_handler("command", "audit", on_error = OnError::retry(DELAYS))]
    async fn audit(&self, _message: Message) {}

    #[context_handler("message", "command", "notify", on_error = OnError::requeue(3))]
    async fn notify(_ctx: Context<Self>) {}
}

fn main() {
    let table = <Jobs as Handlers>::handlers();
    const RESIZE: OnError = OnError::retry(&[Duration::from_secs(1), Duration::from_secs(30)]);
    assert_eq!(table[0].on_error, Some(RESIZE));
    assert_eq!(table[1].on_error, Some(OnError::Park));
    assert_eq!(table[2].on_error, Some(OnError::Retry { delays: DELAYS }));
    assert_eq!(table[3].on_error, Some(OnError::Requeue { times: 3 }));
}
