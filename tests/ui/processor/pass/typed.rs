// Typed parameters, RPC handlers returning a value or a Result, errors
// choosing error or exception results.
use postage::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Sum {
    a: i64,
    b: i64,
}

#[derive(serde::Serialize)]
struct Answer {
    total: i64,
}

struct Math;

#[processor]
impl Math {
    #[handler("command", "log")]
    async fn log(&self, Params(line): Params<String>) {
        let _ = line.len();
    }

    #[rpc_handler("command", "sum")]
    async fn sum(&self, Params(sum): Params<Sum>) -> i64 {
        sum.a + sum.b
    }

    #[rpc_handler("command", "answer")]
    async fn answer(&self, numbers: Params<Vec<i64>>) -> Answer {
        Answer { total: numbers.iter().sum() }
    }

    #[rpc_handler("command", "now")]
    async fn now(&self) -> &'static str {
        "now"
    }

    #[rpc_handler("command", "nothing")]
    async fn nothing(&self, _content: Content) {}

    #[rpc_handler("command", "div")]
    async fn div(&self, Params((a, b)): Params<(i64, i64)>) -> Result<i64, RpcError> {
        if b == 0 {
            return Err(RpcError::exception("ZeroDivisionError", "division by zero"));
        }
        let offset: i64 = "0".parse()?;
        Ok(a / b + offset)
    }

    #[rpc_handler("command", "parse")]
    async fn parse(&self, Params(text): Params<String>) -> Result<i64, std::num::ParseIntError> {
        text.parse()
    }

    #[rpc_handler("command", "typed_reply")]
    async fn typed_reply(&self, Params(n): Params<u8>, reply: Reply) -> Result<(), postage::Error> {
        reply.success(n).await
    }
}

fn main() {
    assert_eq!(<Math as Handlers>::handlers().len(), 8);
}
