//! Two hooks given one name by mistake: said at startup and in the listing.

mod metrics {
    #[lichtara::cleanup(order = 1, name = "flush")]
    fn flush() {}
}

mod journal {
    #[lichtara::cleanup(order = 2, name = "flush")]
    fn flush() {}
}

#[lichtara::main(flavor = "current_thread")]
async fn main() {}
