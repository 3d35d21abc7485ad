//! Procedural macros of [lichtara-cleanup](https://docs.rs/lichtara-cleanup):
//! `#[lichtara::cleanup]`, `#[lichtara::reload]` and `#[lichtara::main]`. Use them through the
//! `lichtara` crate; this crate only parses, validates and expands — every
//! behaviour lives in the runtime crate.

mod args;
mod ast;
mod ctxt;
mod expand;
mod fallback;
mod timeout;
mod valid;

use proc_macro::TokenStream;

/// Registers a cleanup hook. See `lichtara::cleanup`.
#[proc_macro_attribute]
pub fn cleanup(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::cleanup(args.into(), item.into()).into()
}

/// Registers a reload hook. See `lichtara::reload`.
#[proc_macro_attribute]
pub fn reload(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::reload(args.into(), item.into()).into()
}

/// Runs `main` under the shutdown sequence. See `lichtara::main`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::main(args.into(), item.into()).into()
}
