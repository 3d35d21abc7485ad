// A managed instance whose handle is dropped at once is not cleaned at
// shutdown: the compiler says so (here, as an error).
#![deny(unused_must_use)]

#[lichtara::cleanup]
struct Conn;

impl lichtara::Cleanup for Conn {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        Ok(())
    }
}

fn main() {
    lichtara::manage(Conn);
}
