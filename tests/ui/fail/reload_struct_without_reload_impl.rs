#[lichtara::cleanup]
#[lichtara::reload(order = 2)]
struct Settings {
    path: String,
}

impl lichtara::Cleanup for Settings {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        Ok(())
    }
}

fn main() {}
