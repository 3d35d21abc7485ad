// Every struct shape #[lichtara::cleanup] accepts, with manage() and Managed.

use lichtara::{BoxError, Cleanup, Managed};

#[lichtara::cleanup(order = 2, timeout = "3s")]
struct Named {
    url: String,
}

#[lichtara::cleanup]
pub struct Tuple(pub u32);

#[lichtara::cleanup(name = "unit resource", order = -1)]
#[derive(Debug)]
struct Unit;

impl Cleanup for Named {
    async fn cleanup(&self) -> Result<(), BoxError> {
        let _ = &self.url;
        Ok(())
    }
}

impl Cleanup for Tuple {
    async fn cleanup(&self) -> Result<(), BoxError> {
        Err(std::io::Error::other(format!("tuple {}", self.0)).into())
    }
}

impl Cleanup for Unit {
    // The trait's method may also be written as a plain fn returning a future.
    fn cleanup(&self) -> impl std::future::Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }
}

fn main() {
    let named: Managed<Named> = lichtara::manage(Named { url: "db".into() });
    let clone = named.clone();
    assert_eq!(clone.url, "db");
    let tuple = lichtara::manage(Tuple(3));
    assert_eq!(tuple.0, 3);
    let unit = lichtara::manage(Unit);
    assert_eq!(format!("{unit:?}"), "Managed(Unit)");
    let _: &Unit = unit.as_ref();
}
