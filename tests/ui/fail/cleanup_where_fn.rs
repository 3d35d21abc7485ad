#[lichtara::cleanup]
fn hook()
where
    u8: Copy,
{
}

fn main() {}
