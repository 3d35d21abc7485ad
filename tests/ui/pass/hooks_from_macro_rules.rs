// Hooks written by a `macro_rules!`: the names the attribute binds must
// resolve in the macro's own context.

macro_rules! hooks {
    ($($name:ident => $order:literal),*) => {
        $(
            #[lichtara::cleanup(order = $order)]
            async fn $name() -> std::io::Result<()> {
                Ok(())
            }
        )*
    };
}

macro_rules! early_hook {
    ($name:ident, $order:literal) => {
        #[lichtara::cleanup(order = -$order)]
        async fn $name() {}
    };
}

macro_rules! sync_hook {
    ($name:ident) => {
        #[lichtara::cleanup(timeout = "1s")]
        fn $name() {}
    };
}

hooks!(flush => 1, close => 2);
sync_hook!(sync_journal);
early_hook!(stop_accepting, 5);

#[lichtara::main]
async fn main() {}
