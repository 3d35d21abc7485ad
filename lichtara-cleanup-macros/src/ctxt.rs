//! Collects every problem found in one attribute, so that all are reported
//! in one compile. A context must be [`check`](Ctxt::check)ed: dropping one
//! unchecked is a bug of this crate (errors recorded and never reported),
//! and panics, as serde's does.

use std::cell::RefCell;
use std::fmt::Display;

use quote::ToTokens;

pub(crate) struct Ctxt {
    /// `None` once checked.
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Default for Ctxt {
    fn default() -> Self {
        Self {
            errors: RefCell::new(Some(Vec::new())),
        }
    }
}

impl Ctxt {
    fn push(&self, err: syn::Error) {
        self.errors
            .borrow_mut()
            .as_mut()
            .expect("an error recorded in a checked context")
            .push(err);
    }

    /// Records an error spanned on `tokens`.
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&self, tokens: T, message: M) {
        self.push(syn::Error::new_spanned(tokens.into_token_stream(), message));
    }

    /// Records an error from syn.
    pub(crate) fn syn_error(&self, err: syn::Error) {
        self.push(err);
    }

    /// All errors, combined into one; `Ok` when there were none.
    pub(crate) fn check(self) -> Result<(), syn::Error> {
        let errors = self.errors.borrow_mut().take().unwrap_or_default();
        let mut errors = errors.into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for err in errors {
            combined.combine(err);
        }
        Err(combined)
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if self.errors.get_mut().is_some() && !std::thread::panicking() {
            panic!("a lichtara macro dropped its error context unchecked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "dropped its error context unchecked")]
    fn a_context_dropped_unchecked_panics() {
        let cx = Ctxt::default();
        cx.syn_error(syn::Error::new(proc_macro2::Span::call_site(), "lost"));
        drop(cx);
    }

    #[test]
    fn a_checked_context_reports_every_error() {
        let cx = Ctxt::default();
        cx.syn_error(syn::Error::new(proc_macro2::Span::call_site(), "one"));
        cx.syn_error(syn::Error::new(proc_macro2::Span::call_site(), "two"));
        let err = cx.check().expect_err("two errors");
        assert_eq!(err.into_iter().count(), 2);
    }
}
