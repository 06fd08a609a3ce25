// An RPC handler's return kind is read from how its return type is
// written, by last path segment. `Answer`, a type alias of `Result`, is not
// seen as a `Result`: its value is taken as the reply (`IntoReply`, i.e.
// `serde::Serialize`), and `Result<i64, RpcError>` is not `Serialize`
// because `RpcError` is not. The error is on the return type. Writing
// `-> Result<i64, RpcError>`, or an alias named `Result` (as
// `postage::Result<T>`), compiles.
use postage::prelude::*;

type Answer = Result<i64, RpcError>;

struct Calculator;

#[processor]
impl Calculator {
    #[rpc_handler("command", "div")]
    async fn div(&self, Params((a, b)): Params<(i64, i64)>) -> Answer {
        if b == 0 {
            return Err(RpcError::exception("ZeroDivisionError", "division by zero"));
        }
        Ok(a / b)
    }
}

fn main() {}
