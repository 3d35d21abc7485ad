// Every accepted free-function form of #[lichtara::cleanup].

#[lichtara::cleanup]
fn sync_unit() {}

#[lichtara::cleanup(order = 1)]
fn sync_io() -> std::io::Result<()> {
    Ok(())
}

#[lichtara::cleanup(order = 2, timeout = "250ms")]
async fn async_unit() {}

#[lichtara::cleanup(order = 3, timeout = "1m 30s")]
async fn async_anyhow() -> anyhow::Result<()> {
    Ok(())
}

#[derive(Debug)]
struct MyError;

impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mine")
    }
}

impl std::error::Error for MyError {}

#[lichtara::cleanup(order = -4)]
async fn async_custom_error() -> Result<(), MyError> {
    Ok(())
}

#[lichtara::cleanup(order = 5)]
fn sync_boxed() -> Result<(), lichtara::BoxError> {
    Ok(())
}

/// Doc comments and other attributes stay on the item.
#[lichtara::cleanup(name = "custom name", order = 6, timeout = "5s")]
#[allow(clippy::unused_async)]
pub async fn public_hook() {}

pub(crate) mod nested {
    #[lichtara::cleanup]
    pub(crate) fn in_a_module() {}
}

/// A hook may name itself in its body: the registration inside it does
/// not shadow the name.
#[lichtara::cleanup(order = 7)]
fn names_itself() {
    let _itself: fn() = names_itself;
}

#[lichtara::cleanup(order = -2147483648)]
fn lowest() {}

#[lichtara::cleanup(order = 2147483647)]
fn highest() {}

fn main() {
    // A module inside a function is a module: its hooks are module items.
    mod inside_main {
        #[lichtara::cleanup]
        pub(super) fn in_a_module_in_main() {}
    }
    inside_main::in_a_module_in_main();
    // The functions stay callable as written.
    sync_unit();
    sync_io().unwrap();
    sync_boxed().unwrap();
    nested::in_a_module();
    lowest();
    highest();
    let _ = (async_unit(), async_anyhow(), async_custom_error(), public_hook());
}
