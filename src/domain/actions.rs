//! Which action each agreement status allows: the state table in one place.
//!
//! The application layer asks [`Status::allows`] before it changes an agreement; a refusal says
//! in a sentence what the action needs and what the agreement is (the API answers it as 409).
//! Checks that depend on more than the status (which signer, whose turn, retention dates) stay
//! with the action.

use super::agreement::Status;

/// What staff, signers or the system ask of an agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Replace a draft's intake with a new version.
    Replace,
    /// Approve a version's departures from policy.
    Approve,
    /// Freeze the document and send the links.
    Send,
    /// Withdraw the agreement.
    Void,
    /// Issue a signer a new link.
    Resend,
    /// Correct or reassign a signer.
    UpdateSigner,
    /// Back to draft after a decline.
    Revise,
    /// A signer signs or declines through their link.
    Sign,
    /// End an executed agreement.
    Terminate,
    /// Certify the return or destruction of PHI after termination.
    CertifyDisposition,
}

impl Action {
    pub const ALL: [Action; 10] = [
        Action::Replace,
        Action::Approve,
        Action::Send,
        Action::Void,
        Action::Resend,
        Action::UpdateSigner,
        Action::Revise,
        Action::Sign,
        Action::Terminate,
        Action::CertifyDisposition,
    ];
}

/// Why the status does not allow an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub action: Action,
    pub status: Status,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.status.as_str();
        match self.action {
            Action::Replace => write!(f, "only a draft can be replaced; this agreement is {s}"),
            Action::Approve => write!(f, "only an agreement awaiting approval can be approved; this one is {s}"),
            Action::Send => write!(f, "only a draft can be sent; this agreement is {s}"),
            Action::Void => {
                write!(f, "this agreement is {s} and cannot be voided: only an agreement not yet executed can be")
            }
            Action::Resend => write!(f, "links can only be resent while out for signature; this agreement is {s}"),
            Action::UpdateSigner => write!(f, "signers cannot change; this agreement is {s}"),
            Action::Revise => write!(f, "only a declined agreement can be revised; this one is {s}"),
            Action::Sign => write!(f, "signing is closed: the agreement is {s}"),
            Action::Terminate => write!(f, "only an executed agreement can be terminated; this one is {s}"),
            Action::CertifyDisposition => {
                write!(f, "return or destruction is certified after termination; this agreement is {s}")
            }
        }
    }
}

impl std::error::Error for Refusal {}

impl Status {
    pub const ALL: [Status; 10] = [
        Status::Draft,
        Status::AwaitingApproval,
        Status::Sent,
        Status::PartiallySigned,
        Status::Executed,
        Status::Declined,
        Status::Voided,
        Status::Expired,
        Status::Terminated,
        Status::Closed,
    ];

    /// Whether an agreement in this status may undergo `action`.
    pub fn allows(self, action: Action) -> Result<(), Refusal> {
        use Status::*;
        let allowed = match action {
            Action::Replace | Action::Send => self.is_draft(),
            Action::Approve => self == AwaitingApproval,
            // Void only before execution: a terminated or closed agreement was executed, and
            // voiding it would move its six-year retention back to its creation date.
            Action::Void => !matches!(self, Executed | Voided | Terminated | Closed),
            // An expired agreement comes back to life with a fresh link.
            Action::Resend => self.is_out_for_signature() || self == Expired,
            Action::UpdateSigner => !matches!(self, Executed | Voided | Declined),
            Action::Revise => self == Declined,
            Action::Sign => self.is_out_for_signature(),
            Action::Terminate => self == Executed,
            Action::CertifyDisposition => self == Terminated,
        };
        if allowed { Ok(()) } else { Err(Refusal { action, status: self }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole table: every action × every status, written out so a change to it is a
    /// deliberate change to this test.
    #[test]
    fn every_action_in_every_status_is_allowed_or_refused_as_the_table_says() {
        use Action::*;
        // Columns: draft, awaiting_approval, sent, partially_signed, executed, declined, voided,
        // expired, terminated, closed.
        let table: [(Action, [bool; 10]); 10] = [
            (Replace, [true, true, false, false, false, false, false, false, false, false]),
            (Approve, [false, true, false, false, false, false, false, false, false, false]),
            (Send, [true, true, false, false, false, false, false, false, false, false]),
            (Void, [true, true, true, true, false, true, false, true, false, false]),
            (Resend, [false, false, true, true, false, false, false, true, false, false]),
            (UpdateSigner, [true, true, true, true, false, false, false, true, true, true]),
            (Revise, [false, false, false, false, false, true, false, false, false, false]),
            (Sign, [false, false, true, true, false, false, false, false, false, false]),
            (Terminate, [false, false, false, false, true, false, false, false, false, false]),
            (CertifyDisposition, [false, false, false, false, false, false, false, false, true, false]),
        ];
        assert_eq!(table.map(|(a, _)| a), Action::ALL);
        for (action, row) in table {
            for (status, allowed) in Status::ALL.into_iter().zip(row) {
                let got = status.allows(action);
                if allowed {
                    assert_eq!(got, Ok(()), "{action:?} in {status:?}");
                } else {
                    assert_eq!(got, Err(Refusal { action, status }), "{action:?} in {status:?}");
                }
            }
        }
    }

    #[test]
    fn a_refusal_names_what_the_action_needs_and_what_the_agreement_is() {
        let r = Status::Executed.allows(Action::Send).unwrap_err();
        assert_eq!(r.to_string(), "only a draft can be sent; this agreement is executed");
        let r = Status::Draft.allows(Action::Terminate).unwrap_err();
        assert_eq!(r.to_string(), "only an executed agreement can be terminated; this one is draft");
        for action in Action::ALL {
            let status = Status::ALL.into_iter().find(|s| s.allows(action).is_err()).expect("some status refuses");
            let text = status.allows(action).unwrap_err().to_string();
            assert!(text.contains(status.as_str()), "{action:?}: {text}");
        }
    }
}
