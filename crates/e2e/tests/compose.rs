//! The docker-compose cluster (docs/compose.md) from the suite: runs `scripts/compose-test`, which
//! builds the image, brings up deploy/docker-compose.yml and checks Services and DNS across nodes,
//! a killed node healed, a restarted store losing nothing. CI runs the script itself, from
//! scripts/test after `cargo test` (not inside it: it takes about two minutes, needs Docker Engine
//! and docker-compose v1, and must not share the machine with the parallel tests), so this test
//! is ignored by default; it is the way to run it from cargo:
//!
//! ```sh
//! cargo build --bins && cargo test -p niwa-e2e --test compose -- --ignored
//! ```
//!
//! The script runs with `--no-build` (cargo holds the target directory while tests run, so it
//! cannot build): the image takes the binaries already in target/debug. `NIWA_COMPOSE_TEST_ARGS`
//! replaces the arguments (e.g. `--no-build --etcd`).

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "needs Docker Engine and docker-compose v1; builds an image (scripts/compose-test)"]
fn compose_cluster() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let args = std::env::var("NIWA_COMPOSE_TEST_ARGS").unwrap_or_else(|_| "--no-build".into());
    // The script's own output (phases, failures) goes straight to the terminal.
    let status = Command::new(root.join("scripts/compose-test"))
        .args(args.split_whitespace())
        .current_dir(&root)
        .status();
    match status {
        Ok(s) => assert!(s.success(), "scripts/compose-test {args} failed: {s}"),
        Err(e) => panic!("cannot run scripts/compose-test: {e}"),
    }
}
