use postage::prelude::*;

struct Calculator;

#[processor]
impl Calculator {
    #[rpc_handler("command", "sqrt", on_error = OnError::Park)]
    async fn sqrt(&self, Params(x): Params<f64>) -> f64 {
        x.sqrt()
    }
}

fn main() {}
