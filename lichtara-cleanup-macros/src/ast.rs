//! What the attribute was put on.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{FnArg, Item, ItemFn, ItemStruct};

use crate::ctxt::Ctxt;

/// An item `#[lichtara::cleanup]` accepts.
pub(crate) enum Target {
    Fn(ItemFn),
    Struct(ItemStruct),
}

/// The struct form, shown wherever a hook is put on the wrong thing.
const STRUCT_FORM: &str = "hooks are free functions (`#[lichtara::cleanup] async fn close() { ... }`) or resource structs (`#[lichtara::cleanup] struct Db { ... }` with `impl lichtara::Cleanup for Db`)";

/// Classifies the annotated item; records an error for anything else.
pub(crate) fn cleanup_target(cx: &Ctxt, item: TokenStream) -> Option<Target> {
    let item = match syn::parse2::<Item>(item) {
        Ok(item) => item,
        Err(err) => {
            cx.syn_error(err);
            return None;
        }
    };
    let (what, tokens): (&str, TokenStream) = match item {
        Item::Fn(function) => {
            if let Some(FnArg::Receiver(receiver)) = function.sig.inputs.first() {
                cx.error_spanned_by(
                    receiver,
                    format!("`#[lichtara::cleanup]` cannot be put on a method; {STRUCT_FORM}"),
                );
                return None;
            }
            return Some(Target::Fn(function));
        }
        Item::Struct(item) => return Some(Target::Struct(item)),
        Item::Enum(item) => ("an enum", item.enum_token.to_token_stream()),
        Item::Union(item) => ("a union", item.union_token.to_token_stream()),
        Item::Trait(item) => ("a trait", item.trait_token.to_token_stream()),
        Item::TraitAlias(item) => ("a trait alias", item.trait_token.to_token_stream()),
        Item::Impl(item) => ("an impl block", item.impl_token.to_token_stream()),
        Item::Const(item) => ("a const", item.const_token.to_token_stream()),
        Item::Static(item) => ("a static", item.static_token.to_token_stream()),
        Item::Mod(item) => ("a module", item.mod_token.to_token_stream()),
        Item::Type(item) => ("a type alias", item.type_token.to_token_stream()),
        Item::Use(item) => ("a use declaration", item.use_token.to_token_stream()),
        Item::ExternCrate(item) => ("an extern crate", item.extern_token.to_token_stream()),
        Item::ForeignMod(item) => ("an extern block", item.abi.to_token_stream()),
        Item::Macro(item) => ("a macro", item.mac.path.to_token_stream()),
        other => ("this item", other.to_token_stream()),
    };
    cx.error_spanned_by(
        tokens,
        format!("`#[lichtara::cleanup]` cannot be put on {what}; {STRUCT_FORM}"),
    );
    None
}
