//! JSON Schemas of Postage messages (the wire format's envelope) and of
//! their parameters.

use serde_json::{Value, json};

use crate::remote::ParamsInfo;

/// The schema of a parameters type: its JSON Schema when it has one,
/// otherwise its Rust type's name; any JSON value when unknown.
pub(super) fn parameters(params: Option<&ParamsInfo>) -> Value {
    match params {
        Some(ParamsInfo {
            schema: Some(schema),
            ..
        }) => schema.clone(),
        Some(ParamsInfo { type_name, .. }) => json!({
            "description": format!("the Rust type `{type_name}`, decoded with serde"),
            "x-rust-type": type_name,
        }),
        None => json!({ "description": "any JSON value" }),
    }
}

/// The payload of a command or status called `name`: the envelope of
/// the wire format with these parameters.
pub(super) fn message_payload(kind: &str, name: &str, category: &str, parameters: Value) -> Value {
    let content = if kind == "command" {
        json!({
            "type": "object",
            "properties": { "parameters": parameters },
        })
    } else {
        json!({ "type": "object" })
    };
    envelope(json!(kind), json!(name), json!(category), content)
}

/// The payload of a result: success, error or exception.
pub(super) fn result_payload() -> Value {
    let content = json!({
        "type": "object",
        "required": ["type", "value", "message"],
        "properties": {
            "type": { "enum": ["success", "error", "exception"] },
            "value": { "description": "the value (success), null (error), or the exception's name" },
            "message": { "type": "string" },
        },
    });
    envelope(json!("result"), json!("none"), json!("message"), content)
}

fn envelope(kind: Value, name: Value, category: Value, content: Value) -> Value {
    json!({
        "type": "object",
        "required": ["type", "name", "category", "version", "fingerprint", "content"],
        "properties": {
            "type": { "const": kind },
            "name": { "const": name },
            "category": { "const": category },
            "version": { "enum": ["2", 2] },
            "fingerprint": fingerprint(),
            "content": content,
            "_reserved": { "type": "object" },
        },
    })
}

/// The sender's fingerprint: strings as Python sends them (numbers
/// accepted).
fn fingerprint() -> Value {
    let field = |what: &str| json!({ "type": ["string", "number", "null"], "description": what });
    json!({
        "type": "object",
        "properties": {
            "name": field("the component's name"),
            "type": field("its type"),
            "pid": field("its process id"),
            "host": field("its host"),
            "user": field("the operating system user running it"),
            "vhost": field("its RabbitMQ virtual host"),
        },
    })
}

/// The JSON Schema of `T`, inline (no `$ref` out of the schema, which an
/// AsyncAPI document would resolve against itself), draft 7 as AsyncAPI
/// schemas are.
#[cfg(feature = "schemars")]
pub fn json_schema<T: schemars::JsonSchema + ?Sized>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft07()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
    }
    schema
}

/// `text` as an AsyncAPI identifier (letters, digits, `.`, `-`, `_`).
pub(super) fn id(text: &str) -> String {
    let id: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() { "_".into() } else { id }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_keep_only_what_asyncapi_allows() {
        assert_eq!(id("echo-exchange.echo-rk"), "echo-exchange.echo-rk");
        assert_eq!(id("a/b c#*"), "a_b_c__");
        assert_eq!(id(""), "_");
    }

    #[test]
    fn parameters_are_a_schema_a_type_name_or_anything() {
        let typed = ParamsInfo {
            type_name: "Operands".into(),
            schema: None,
        };
        assert_eq!(parameters(Some(&typed))["x-rust-type"], "Operands");
        let schema = json!({"type": "integer"});
        let with_schema = ParamsInfo {
            schema: Some(schema.clone()),
            ..typed
        };
        assert_eq!(parameters(Some(&with_schema)), schema);
        assert_eq!(parameters(None)["description"], "any JSON value");
    }
}
