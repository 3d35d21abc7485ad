// Every form #[lichtara::reload] accepts: free fns (async and sync, with
// every key), managed resource structs (with #[lichtara::cleanup], above or
// below it), a fn that is both a cleanup and a reload hook; the report API.

use lichtara::{BoxError, Cleanup, Reload, ReloadReport};

#[lichtara::reload]
async fn unit_async() {}

#[lichtara::reload(order = 2, timeout = "3s", name = "reread settings")]
async fn io_async() -> std::io::Result<()> {
    Ok(())
}

#[lichtara::reload(order = -1)]
fn unit_sync() {}

#[lichtara::reload(timeout = "250ms")]
fn anyhow_sync() -> anyhow::Result<()> {
    Ok(())
}

#[lichtara::cleanup]
#[lichtara::reload(order = 1)]
async fn both() {}

#[lichtara::cleanup]
#[lichtara::reload(order = 3)]
struct Tls {
    path: String,
}

#[lichtara::reload]
#[lichtara::cleanup(order = 4)]
pub struct Pool(pub u32);

impl Cleanup for Tls {
    async fn cleanup(&self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl Reload for Tls {
    async fn reload(&self) -> Result<(), BoxError> {
        let _ = &self.path;
        Ok(())
    }
}

impl Cleanup for Pool {
    async fn cleanup(&self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl Reload for Pool {
    async fn reload(&self) -> Result<(), BoxError> {
        Err(format!("pool {} cannot reload", self.0).into())
    }
}

mod nested {
    #[lichtara::reload(crate = "lichtara")]
    pub(crate) fn in_a_module() {}
}

fn summary(report: &ReloadReport) -> (u64, bool, usize) {
    (report.number(), report.is_success(), report.hooks().len())
}

fn main() {
    let tls = lichtara::manage(Tls {
        path: "cert.pem".into(),
    });
    let pool = lichtara::manage(Pool(4));
    assert_eq!(tls.path, "cert.pem");
    assert_eq!(pool.0, 4);
    let _ = summary;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let reloads: lichtara::Reloads = lichtara::reloaded();
        drop(reloads);
    });
}
