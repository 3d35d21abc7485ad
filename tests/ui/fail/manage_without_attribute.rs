struct Plain;

fn main() {
    let _ = lichtara::manage(Plain);
}
