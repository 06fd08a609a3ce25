//! [`Destination`]: which components a control command is for.

use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;

/// Which components a control command selects, as Celery's
/// `--destination` does: each selector is a component's name, its
/// `pid@host`, or its type; a component is selected when any selector
/// names it. No selector selects every component.
///
/// ```
/// use postage::Fingerprint;
/// use postage::remote::Destination;
///
/// let mut echo = Fingerprint::new("echo_receive", "controller");
/// echo.pid = Some(4242);
/// echo.host = Some("vm".into());
/// assert!(Destination::all().selects(&echo));
/// assert!(Destination::new(["echo_receive"]).selects(&echo));
/// assert!(Destination::new(["4242@vm"]).selects(&echo));
/// assert!(Destination::new(["other", "controller"]).selects(&echo));
/// assert!(!Destination::new(["calc_service"]).selects(&echo));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Destination(Vec<String>);

impl Destination {
    /// Every component.
    pub fn all() -> Self {
        Destination(Vec::new())
    }

    /// The components these selectors name (every component when there
    /// is none).
    pub fn new<S: Into<String>>(selectors: impl IntoIterator<Item = S>) -> Self {
        Destination(selectors.into_iter().map(Into::into).collect())
    }

    /// The selectors.
    pub fn selectors(&self) -> &[String] {
        &self.0
    }

    /// Does it select every component?
    pub fn is_all(&self) -> bool {
        self.0.is_empty()
    }

    /// Does it select the component with this fingerprint?
    pub fn selects(&self, component: &Fingerprint) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let at = match (component.pid, &component.host) {
            (Some(pid), Some(host)) => Some(format!("{pid}@{host}")),
            _ => None,
        };
        self.0.iter().any(|selector| {
            component.name.as_deref() == Some(selector.as_str())
                || component.kind.as_deref() == Some(selector.as_str())
                || at.as_deref() == Some(selector.as_str())
        })
    }
}

impl std::fmt::Display for Destination {
    /// The selectors separated by commas, or `every component`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("every component")
        } else {
            f.write_str(&self.0.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_without_pid_or_host_is_selected_by_name_or_type_only() {
        let anonymous = Fingerprint {
            name: None,
            kind: Some("worker".into()),
            ..Fingerprint::default()
        };
        assert!(Destination::new(["worker"]).selects(&anonymous));
        assert!(!Destination::new(["None"]).selects(&anonymous));
        assert!(!Destination::new(["@"]).selects(&anonymous));
        assert_eq!(Destination::new(["a", "b"]).to_string(), "a, b");
        assert_eq!(Destination::all().to_string(), "every component");
        let wire = serde_json::to_value(Destination::new(["a"])).unwrap();
        assert_eq!(wire, serde_json::json!(["a"]));
    }
}
