//! Arbitrary UTF-8 into `Config::from_url`. The password must never show:
//! a parsed config prints (Display and Debug) exactly as the same config
//! with another password does.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postage::Config;

fuzz_target!(|url: &str| {
    let Ok(config) = Config::from_url(url) else {
        return;
    };
    let display = config.to_string();
    let debug = format!("{config:?}");

    let user = config.user().to_owned();
    let other = config.clone().with_credentials(user, "\u{1}other-password\u{1}");
    assert_eq!(display, other.to_string(), "Display depends on the password");
    assert_eq!(debug, format!("{other:?}"), "Debug depends on the password");

    // The printed URL parses back to the same place (password aside).
    // Known: Display writes the host without [brackets], so a host with ':'
    // or '[' (IPv6, or `amqp://[[::1]` giving host "[::1") does not print
    // as a URL that reads back; see README.md. Skipped until fixed.
    if config.host().contains([':', '[', ']']) {
        return;
    }
    let reparsed = Config::from_url(&display)
        .unwrap_or_else(|e| panic!("Display output {display:?} does not parse: {e}"));
    assert_eq!(reparsed.tls(), config.tls(), "tls");
    assert_eq!(reparsed.port(), config.port(), "port");
    assert_eq!(reparsed.user(), config.user(), "user");
    assert_eq!(reparsed.vhost(), config.vhost(), "vhost");
    assert_eq!(reparsed.host(), config.host(), "host");
});
