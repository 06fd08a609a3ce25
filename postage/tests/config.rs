//! Configuration from variables and URLs: defaults, precedence,
//! deprecated names, redaction, and bad values.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;

use postage::Config;

fn from(vars: &[(&str, &str)]) -> Result<Config, postage::ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|name| vars.get(name).cloned())
}

#[test]
fn defaults_match_python() {
    let config = from(&[]).expect("valid");
    assert_eq!(config.host(), "localhost");
    assert_eq!(config.port(), 5672);
    assert_eq!(config.vhost(), "/");
    assert_eq!(config.user(), "guest");
    assert!(!config.tls());
    assert!(!config.debug());
}

#[test]
fn variables_are_read() {
    let config = from(&[
        ("POSTAGE_HOST", "mq"),
        ("POSTAGE_PORT", "5673"),
        ("POSTAGE_VHOST", "development"),
        ("POSTAGE_USER", "svc"),
        ("POSTAGE_PASSWORD", "pw"),
        ("POSTAGE_DEBUG_MODE", "TRUE"),
    ])
    .expect("valid");
    assert_eq!(config.to_string(), "amqp://svc@mq:5673/development");
    assert!(config.debug());
}

#[test]
fn deprecated_names_are_fallbacks() {
    let old = from(&[
        ("POSTAGE_RMQ_USER", "old"),
        ("POSTAGE_RMQ_PASSWORD", "oldpw"),
    ])
    .expect("valid");
    assert_eq!(old.user(), "old");
    let both = from(&[("POSTAGE_RMQ_USER", "old"), ("POSTAGE_USER", "new")]).expect("valid");
    assert_eq!(both.user(), "new", "the new name wins");
}

#[test]
fn url_wins_over_parts() {
    let config = from(&[
        ("POSTAGE_HOST", "ignored"),
        ("POSTAGE_USER", "from-var"),
        (
            "POSTAGE_URL",
            "amqps://app:p%40ss@broker.example:7777/prod%2Fa",
        ),
    ])
    .expect("valid");
    assert!(config.tls());
    assert_eq!(config.host(), "broker.example");
    assert_eq!(config.port(), 7777);
    assert_eq!(config.user(), "app");
    assert_eq!(config.vhost(), "prod/a");
    // What the URL leaves out comes from the variables.
    let partial = from(&[("POSTAGE_USER", "svc"), ("POSTAGE_URL", "amqp://mq")]).expect("valid");
    assert_eq!(
        (partial.user(), partial.host(), partial.vhost()),
        ("svc", "mq", "/")
    );
    let slash = Config::from_url("amqp://guest:guest@127.0.0.1:5672/%2f").expect("valid");
    assert_eq!(slash.vhost(), "/");
    assert_eq!(Config::from_url("amqps://h").expect("valid").port(), 5671);
    assert_eq!(
        Config::from_url("amqp://[::1]:5673")
            .expect("valid")
            .to_string(),
        "amqp://guest@[::1]:5673/%2F"
    );
}

#[test]
fn password_never_shows() {
    let secret = "hunter2-very-secret";
    let config = from(&[
        ("POSTAGE_PASSWORD", secret),
        ("POSTAGE_URL", &format!("amqp://u:{secret}@h/v")),
    ])
    .expect("valid");
    for shown in [
        format!("{config}"),
        format!("{config:?}"),
        format!("{config:#?}"),
    ] {
        assert!(!shown.contains(secret), "password shown in {shown}");
    }
    // Errors about a URL with a password do not repeat it either.
    let error =
        from(&[("POSTAGE_URL", &format!("amqp://u:{secret}@h:notaport/v"))]).expect_err("bad port");
    assert!(!error.to_string().contains(secret), "{error}");
    // A password with an unescaped '/' is still a password, not a port.
    let slashed = Config::from_url("amqp://user:pa/ss@host:5673/v").expect("valid");
    assert_eq!(
        (slashed.host(), slashed.port(), slashed.vhost()),
        ("host", 5673, "v")
    );
    assert!(!format!("{slashed} {slashed:?}").contains("pa/ss"));
}

#[test]
fn bad_values_name_the_variable() {
    let cases = [
        ("POSTAGE_PORT", "http"),
        ("POSTAGE_PORT", "70000"),
        ("POSTAGE_PORT", "0"),
        ("POSTAGE_DEBUG_MODE", "maybe"),
        ("POSTAGE_URL", "http://host"),
        ("POSTAGE_URL", "no scheme"),
        ("POSTAGE_URL", "amqp://h:12x"),
        ("POSTAGE_URL", "amqp://h/%zz"),
    ];
    for (name, value) in cases {
        let error = from(&[(name, value)]).expect_err(value);
        assert!(
            error.variable().starts_with(name),
            "{name}={value}: error names {:?}",
            error.variable()
        );
        assert!(error.to_string().contains(name), "{error}");
    }
}

#[test]
fn settable_in_code() {
    let config = Config::default()
        .with_host("h")
        .with_port(1)
        .with_vhost("v")
        .with_credentials("u", "p")
        .with_tls(true)
        .with_debug(true);
    assert_eq!(config.to_string(), "amqps://u@h:1/v");
    assert!(config.debug());
}

#[test]
fn several_addresses_from_the_url_or_the_host_variable() {
    let config = Config::from_url("amqp://svc:pw@h1:5672,h2:5673,h3,[::1]:5674/prod").unwrap();
    let addresses: Vec<_> = config.addresses().collect();
    assert_eq!(
        addresses,
        [("h1", 5672), ("h2", 5673), ("h3", 5672), ("::1", 5674)]
    );
    assert_eq!(config.host(), "h1");
    assert_eq!(
        config.to_string(),
        "amqp://svc@h1:5672,h2:5673,h3:5672,[::1]:5674/prod"
    );
    assert!(!format!("{config:?}").contains("pw"));
    // The printed form reads back to the same addresses.
    let again = Config::from_url(&config.to_string()).unwrap();
    assert_eq!(again.addresses().collect::<Vec<_>>(), addresses);
    // TLS: the default port of each address is 5671.
    let tls = Config::from_url("amqps://h1,h2:6000/").unwrap();
    assert_eq!(
        tls.addresses().collect::<Vec<_>>(),
        [("h1", 5671), ("h2", 6000)]
    );

    let vars = from(&[("POSTAGE_HOST", "r1,r2:5680"), ("POSTAGE_PORT", "5679")]).unwrap();
    assert_eq!(
        vars.addresses().collect::<Vec<_>>(),
        [("r1", 5679), ("r2", 5680)]
    );
    assert_eq!(vars.address_order(), postage::AddressOrder::Shuffled);
}

#[test]
fn a_bad_entry_of_an_address_list_is_named() {
    for (url, names) in [
        ("amqp://h1,h2:x/", "\"h2:x\""),
        ("amqp://h1,,h3/", "address 2"),
        ("amqp://h1,[::1/", "\"[::1\""),
        ("amqp://h1,h2:0/", "\"h2:0\""),
        ("amqp://h1,h2:70000/", "\"h2:70000\""),
    ] {
        let error = Config::from_url(url).unwrap_err();
        assert!(error.to_string().contains(names), "{url}: {error}");
        assert_eq!(error.variable(), "URL", "{url}");
    }
    let error = from(&[("POSTAGE_HOST", "ok, ")]).unwrap_err();
    assert_eq!(error.variable(), "POSTAGE_HOST");
    assert!(error.to_string().contains("address 2"), "{error}");
}

#[test]
fn addresses_set_in_code() {
    let config = Config::default()
        .with_addresses([("a", 1), ("b", 2)])
        .with_address_order(postage::AddressOrder::InOrder);
    assert_eq!(config.addresses().collect::<Vec<_>>(), [("a", 1), ("b", 2)]);
    // One host again: the list is replaced.
    let single = config.clone().with_host("c");
    assert_eq!(single.addresses().collect::<Vec<_>>(), [("c", 1)]);
    // An empty list changes nothing.
    let same = config.clone().with_addresses(Vec::<(String, u16)>::new());
    assert_eq!(same, config);
}
