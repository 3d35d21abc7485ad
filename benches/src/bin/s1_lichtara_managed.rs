//! S1 with lichtara, shaped as the hand-rolled program is: one cleanup,
//! many units. `S1_UNITS` managed instances of one `#[lichtara::cleanup]`
//! resource type, each with a no-op cleanup; READY, then wait for SIGTERM.

#[lichtara::cleanup]
struct Unit {
    id: usize,
}

impl lichtara::Cleanup for Unit {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        // the no-op cleanup
        std::hint::black_box(self.id);
        Ok(())
    }
}

#[lichtara::main]
async fn main() {
    let units: Vec<_> = (0..lichtara_bench::s1_units())
        .map(|id| lichtara::manage(Unit { id }))
        .collect();
    println!("READY");
    lichtara::signalled().await;
    // Shutdown has begun: the instances are the runtime's to clean now.
    drop(units);
}
