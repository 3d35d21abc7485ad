//! Faults, picked by `MODE`: `main_err` (main returns `Err`), `main_panic`
//! (main panics), `hook_err` (a hook returns `Err`), `hook_panic` (a hook
//! panics), `exit_code` (main returns `ExitCode::from(3)`). The other hooks
//! must run regardless.

use std::process::ExitCode;

use lichtara_tests::event;

fn mode() -> String {
    std::env::var("MODE").unwrap_or_default()
}

#[lichtara::cleanup(order = 1)]
async fn maybe_fails() -> Result<(), std::io::Error> {
    event("maybe_fails ran");
    match mode().as_str() {
        "hook_err" => Err(std::io::Error::other("the disk is full")),
        "hook_panic" => panic!("the hook exploded"),
        _ => Ok(()),
    }
}

#[lichtara::cleanup(order = 1)]
fn sibling() {
    event("sibling ran");
}

#[lichtara::cleanup(order = 2)]
async fn later() {
    event("later ran");
}

/// A pool `main` manages and then loses when it returns or fails: the
/// runtime owns it, so it is cleaned all the same.
#[lichtara::cleanup(order = 1)]
struct Pool;

impl lichtara::Cleanup for Pool {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        event("pool closed");
        Ok(())
    }
}

#[lichtara::main(flavor = "current_thread")]
async fn main() -> Result<ExitCode, String> {
    let _pool = lichtara::manage(Pool);
    event("READY");
    match mode().as_str() {
        "main_err" => Err("main gave up".to_owned()),
        "main_panic" => panic!("main exploded"),
        "exit_code" => Ok(ExitCode::from(3)),
        _ => Ok(ExitCode::SUCCESS),
    }
}
