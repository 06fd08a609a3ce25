//! The dependency lines the README gives, pasted into a new package,
//! resolve to this repository's crates: the package `postage-amqp`, whose
//! library is `postage`, and never the registry's unrelated `postage`.
//!
//! The new package patches `postage-amqp`, `postage-macros` and
//! `postage-postgres` to this repository's folders, which stand in for the published crates: the
//! version requirements of the README must match the versions here.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace folder")
        .to_path_buf()
}

/// The body of every ```toml block of the README that names `postage-amqp`.
fn readme_dependency_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```toml" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            let block = block.join("\n");
            if block.contains("postage-amqp") {
                blocks.push(block);
            }
        }
    }
    blocks
}

/// `cargo metadata` of a new package whose manifest ends with `block`.
fn resolve(block: &str, dir: &Path) -> serde_json::Value {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    let root = root();
    // A line shown without its section is a dependency.
    let section = if block.trim_start().starts_with('[') {
        ""
    } else {
        "[dependencies]\n"
    };
    let manifest = format!(
        "[package]\nname = \"readme-dependency\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
         [workspace]\n\n{section}{block}\n\n\
         [patch.crates-io]\n\
         postage-amqp = {{ path = {:?} }}\n\
         postage-macros = {{ path = {:?} }}\n\
         postage-postgres = {{ path = {:?} }}\n",
        root.join("postage"),
        root.join("postage-macros"),
        root.join("postage-postgres"),
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(dir)
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "the README's dependency lines do not resolve:\n{block}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_readme_dependency_lines_resolve_to_this_repositorys_crate() {
    let blocks = readme_dependency_blocks();
    assert!(
        !blocks.is_empty(),
        "the README gives no dependency line naming postage-amqp"
    );
    for (i, block) in blocks.iter().enumerate() {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("readme-dependency-{i}"));
        let metadata = resolve(block, &dir);
        let packages = metadata["packages"].as_array().unwrap();
        let ours = packages
            .iter()
            .find(|p| p["name"] == "postage-amqp")
            .unwrap_or_else(|| panic!("postage-amqp is not in the graph of:\n{block}"));
        assert!(
            ours["source"].is_null(),
            "postage-amqp came from {} instead of this repository",
            ours["source"]
        );
        assert_eq!(ours["version"], env!("CARGO_PKG_VERSION"));
        let library = ours["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "lib"))
            .expect("postage-amqp has a library");
        assert_eq!(library["name"], "postage", "code says `use postage::...`");
        assert!(
            packages.iter().all(|p| p["name"] != "postage"),
            "the registry's unrelated `postage` crate is in the graph of:\n{block}"
        );
        if block.contains("postage-postgres") {
            let postgres = packages
                .iter()
                .find(|p| p["name"] == "postage-postgres")
                .unwrap_or_else(|| panic!("postage-postgres is not in the graph of:\n{block}"));
            assert!(
                postgres["source"].is_null(),
                "postage-postgres came from {} instead of this repository",
                postgres["source"]
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
