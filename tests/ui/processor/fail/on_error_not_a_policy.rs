use postage::prelude::*;

struct Jobs;

#[processor]
impl Jobs {
    #[handler("command", "run", on_error = "park")]
    async fn run(&self, _content: Content) {}
}

fn main() {}
