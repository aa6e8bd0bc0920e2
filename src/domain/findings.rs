//! Findings: the one shape every check reports in.
//!
//! Used by `check --format json`, by API error bodies and by the API description, so a
//! client handles intake errors, missing clauses and approval needs with one parser.

use serde::Serialize;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Invalid intake or a missing required element: `check` exits non-zero, sending is refused.
    Error,
    /// Allowed to render; blocks sending until a legal or admin user approves.
    NeedsApproval,
    /// Shown for information (facts to verify with counsel, outdated wording); exit 0.
    Advisory,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub level: Level,
    /// A stable machine-readable code, e.g. `invalid_field`, `missing_element`.
    pub code: &'static str,
    /// JSON pointer into the intake, when the finding is about an intake field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The element ID (BAA-04, DUA-06, …) or state code the finding is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element: Option<String>,
    /// The regulation or statute behind the finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citation: Option<String>,
    pub message: String,
}

impl Finding {
    /// An intake field error: `pointer: reason`.
    pub fn field(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            level: Level::Error,
            code: "invalid_field",
            pointer: Some(pointer.into()),
            element: None,
            citation: None,
            message: message.into(),
        }
    }

    pub fn new(level: Level, code: &'static str, message: impl Into<String>) -> Self {
        Finding { level, code, pointer: None, element: None, citation: None, message: message.into() }
    }

    pub fn with_element(mut self, element: impl Into<String>) -> Self {
        self.element = Some(element.into());
        self
    }

    pub fn with_citation(mut self, citation: impl Into<String>) -> Self {
        self.citation = Some(citation.into());
        self
    }

    pub fn with_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = Some(pointer.into());
        self
    }
}

impl std::fmt::Display for Finding {
    /// `pointer: reason` for field errors, `ELEMENT (citation): message` otherwise.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.pointer, &self.element) {
            (Some(p), _) if !p.is_empty() => write!(f, "{p}: {}", self.message),
            (None, Some(e)) => match &self.citation {
                Some(c) => write!(f, "{e} ({c}): {}", self.message),
                None => write!(f, "{e}: {}", self.message),
            },
            _ => f.write_str(&self.message),
        }
    }
}

/// True when any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.level == Level::Error)
}
