struct Settings;

impl Settings {
    #[lichtara::reload]
    fn reread() {}
}

fn main() {}
