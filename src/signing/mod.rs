//! Signing: HMAC-signed signer links ([`token`]) and the ceremony that carries an agreement
//! from draft to executed ([`service`]).

pub mod live;
pub mod token;

/// The version label of [`CONSENT_TEXT`]; recorded with every signature.
pub const CONSENT_VERSION: &str = "esign-consent-2026-11";

/// The electronic-signature consent statement shown to signers (ESIGN 15 U.S.C. 7001; UETA §§ 5,
/// 7, 9). Business-to-business agreements rarely fall under ESIGN's consumer-consent rules, but
/// a clear, recorded consent is what makes the signature attributable.
pub const CONSENT_TEXT: &str = "I agree to sign this agreement electronically. I understand that my typed name below, \
together with the date, my IP address and browser, will be my signature and will have the same effect as a \
handwritten signature. I confirm that I am authorized to sign for the party named. I can view and download the \
agreement as a PDF before signing, and I may ask the sender for a paper copy or to sign on paper instead; \
declining to sign electronically has no cost. Countersign keeps the signed agreement and its audit trail, and \
each party receives the executed copy.";
