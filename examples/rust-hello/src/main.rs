//! A `provided.al2023` function written against AWS's own `lambda_runtime` crate, unchanged from
//! what would run on Lambda: it echoes the event with facts from its context and environment.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    if payload.get("fail").is_some() {
        return Err("asked to fail".into());
    }
    Ok(json!({
        "echo": payload,
        "request_id": context.request_id,
        "function_arn": context.invoked_function_arn,
        "function_name": std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
        "memory": std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").unwrap_or_default(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
