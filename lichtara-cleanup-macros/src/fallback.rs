//! What to emit when the attribute is wrong: the user's item next to the
//! errors, so the rest of the crate still type-checks and rust-analyzer
//! keeps working. The item is unchanged, but for `unused_variables` allowed
//! on a fn whose parameters the error is about.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemFn;

use crate::args::MainArgs;
use crate::expand;

pub(crate) fn item_with_error(item: TokenStream, err: syn::Error) -> TokenStream {
    let errors = err.to_compile_error();
    // Parameters the error is about would also warn as unused: noise.
    let quiet = quote!(#[allow(unused_variables)]);
    let item = match syn::parse2::<syn::ItemFn>(item.clone()) {
        Ok(function) if !function.sig.inputs.is_empty() => quote!(#quiet #function),
        _ => item,
    };
    quote!(#item #errors)
}

/// A best-effort `main`: expanded as if the options were right (parameters,
/// generics and a `#[tokio::main]` dropped), so the only errors shown are
/// the attribute's.
pub(crate) fn main_with_error(
    args: &MainArgs,
    mut function: ItemFn,
    err: syn::Error,
) -> TokenStream {
    function.sig.inputs.clear();
    function.sig.generics = syn::Generics::default();
    // `#[tokio::main]` below would complain of the expansion, not the code.
    function
        .attrs
        .retain(|attr| !crate::valid::is_tokio_main(attr));
    let expanded = expand::main_fn(args, function);
    let errors = err.to_compile_error();
    quote!(#expanded #errors)
}
