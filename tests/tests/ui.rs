//! Compile-time checks of `#[producer]` and `#[processor]`: what compiles,
//! and what fails with an error on the user's token. The expected errors
//! are the `.stderr` files next to each case (regenerate with
//! `TRYBUILD=overwrite cargo test -p postage-tests --test ui`, then read
//! them).

#[test]
fn producer() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/producer/pass/*.rs");
    cases.compile_fail("ui/producer/fail/*.rs");
}

#[test]
fn processor() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/processor/pass/*.rs");
    cases.compile_fail("ui/processor/fail/*.rs");
}
