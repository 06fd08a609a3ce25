//! Where a send goes: the producer's default pairs, its first exchange
//! with another key, or pairs given for this send.

use std::borrow::Cow;

use super::Exchange;

/// Where a send goes.
#[derive(Debug, Clone, Default)]
pub(crate) enum Target {
    /// Every default pair.
    #[default]
    Default,
    /// The first default exchange, with this key.
    Key(String),
    /// These pairs instead of the defaults.
    Eks(Vec<(Exchange, String)>),
}

impl Target {
    /// Python's `_key`: ignored once pairs are given.
    pub(crate) fn with_key(self, key: String) -> Self {
        match self {
            Target::Eks(eks) => Target::Eks(eks),
            _ => Target::Key(key),
        }
    }

    /// Python's `_eks`.
    pub(crate) fn eks<K: Into<String>>(eks: impl IntoIterator<Item = (Exchange, K)>) -> Self {
        Target::Eks(eks.into_iter().map(|(e, k)| (e, k.into())).collect())
    }

    /// The (exchange, key) pairs, given the defaults (borrowed: no copy per
    /// send), and whether they name exchanges the defaults may not hold.
    pub(crate) fn pairs(
        self,
        defaults: &[(Exchange, String)],
    ) -> (Cow<'_, [(Exchange, String)]>, bool) {
        match self {
            Target::Default => (Cow::Borrowed(defaults), false),
            Target::Key(key) => match defaults.first() {
                Some((exchange, _)) => (Cow::Owned(vec![(exchange.clone(), key)]), false),
                None => (Cow::Owned(Vec::new()), false),
            },
            Target::Eks(eks) => (Cow::Owned(eks), true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Exchange = Exchange::direct("a");
    const B: Exchange = Exchange::fanout("b");

    fn names(pairs: &[(Exchange, String)]) -> Vec<(&str, &str)> {
        pairs.iter().map(|(e, k)| (e.name(), k.as_str())).collect()
    }

    #[test]
    fn targets_resolve_as_python_postage_does() {
        let defaults = vec![(A, "ka".to_owned()), (B, "kb".to_owned())];
        let (pairs, new) = Target::Default.pairs(&defaults);
        assert_eq!(names(&pairs), [("a", "ka"), ("b", "kb")]);
        assert!(!new && matches!(pairs, Cow::Borrowed(_)));
        let (pairs, new) = Target::Default.with_key("k".into()).pairs(&defaults);
        assert_eq!(names(&pairs), [("a", "k")]);
        assert!(!new);
        // A key after pairs is ignored, as Python's `_key` beside `_eks`.
        let (pairs, new) = Target::eks([(B, "x")])
            .with_key("k".into())
            .pairs(&defaults);
        assert_eq!(names(&pairs), [("b", "x")]);
        assert!(new);
        assert!(Target::Key("k".into()).pairs(&[]).0.is_empty());
    }
}
