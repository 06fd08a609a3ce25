// The ways to return a `Result` from an RPC handler without writing
// `Result<T, E>` itself: the full path, or an alias named `Result` (as
// `postage::Result<T>`). The macro reads the last path segment, so both
// get the `Result` handling (see fail/result_alias.rs for other aliases).
use postage::prelude::*;

mod calc {
    pub type Result<T> = std::result::Result<T, postage::RpcError>;
}

struct Calculator;

#[processor]
impl Calculator {
    #[rpc_handler("command", "div")]
    async fn div(&self, Params((a, b)): Params<(i64, i64)>) -> std::result::Result<i64, RpcError> {
        if b == 0 {
            return Err(RpcError::exception("ZeroDivisionError", "division by zero"));
        }
        Ok(a / b)
    }

    #[rpc_handler("command", "rem")]
    async fn rem(&self, Params((a, b)): Params<(i64, i64)>) -> calc::Result<i64> {
        if b == 0 {
            return Err(RpcError::exception("ZeroDivisionError", "division by zero"));
        }
        Ok(a % b)
    }
}

fn main() {
    let _ = Processor::builder(Calculator);
}
