// A reloadable struct is a managed resource: without #[lichtara::cleanup],
// lichtara::manage could not own its instances.
#[lichtara::reload]
struct Settings {
    path: String,
}

impl lichtara::Reload for Settings {
    async fn reload(&self) -> Result<(), lichtara::BoxError> {
        let _ = &self.path;
        Ok(())
    }
}

fn main() {}
