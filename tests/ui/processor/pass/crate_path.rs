// The runtime crate under another path.
mod my {
    pub use ::postage;
}

use my::postage::{Content, Handlers};

struct Echo;

#[my::postage::processor(crate = "my::postage")]
impl Echo {
    #[handler("command", "echo")]
    async fn echo(&self, _content: Content) {}

    #[rpc_handler("command", "sum")]
    async fn sum(&self, numbers: my::postage::Params<Vec<i64>>) -> i64 {
        numbers.iter().sum()
    }
}

fn main() {
    assert_eq!(<Echo as Handlers>::handlers().len(), 2);
}
