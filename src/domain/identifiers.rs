//! The limited-data-set screen: the 16 direct identifiers of 45 CFR 164.514(e)(2)(i)–(xvi).
//!
//! A limited data set must exclude these identifiers of the individual and of the individual's
//! relatives, employers and household members. Dates and town/city, State and ZIP code may stay.
//! `screen` flags a DUA `data_elements` entry that names one of them.
//!
//! Matching works on words, not substrings: the element is lowercased, apostrophes are dropped
//! (`driver's` → `drivers`) and every other non-alphanumeric character separates words
//! (`e-mail` → `e mail`). A pattern matches a run of consecutive words, each word equal to the
//! pattern's word or its plural (`+s`, `+es`). When several patterns match, the longest wins, so
//! `email address` is an email address, not a postal address. Names are matched by context:
//! `name` alone, a person word before it (`patient name`, `last name`) or after it
//! (`name of patient`), so `drug name` and `facility name` pass.

/// One of the identifiers a limited data set must exclude.
#[derive(Debug, PartialEq, Eq)]
pub struct Identifier {
    /// As the regulation lists it, e.g. `email addresses`.
    pub name: &'static str,
    /// e.g. `45 CFR 164.514(e)(2)(v)`.
    pub citation: &'static str,
}

/// The 16 identifiers, in regulation order ((e)(2)(i) first).
pub static IDENTIFIERS: [Identifier; 16] = [
    Identifier { name: "names", citation: "45 CFR 164.514(e)(2)(i)" },
    Identifier {
        name: "postal address information other than town or city, State, and ZIP code",
        citation: "45 CFR 164.514(e)(2)(ii)",
    },
    Identifier { name: "telephone numbers", citation: "45 CFR 164.514(e)(2)(iii)" },
    Identifier { name: "fax numbers", citation: "45 CFR 164.514(e)(2)(iv)" },
    Identifier { name: "email addresses", citation: "45 CFR 164.514(e)(2)(v)" },
    Identifier { name: "social security numbers", citation: "45 CFR 164.514(e)(2)(vi)" },
    Identifier { name: "medical record numbers", citation: "45 CFR 164.514(e)(2)(vii)" },
    Identifier { name: "health plan beneficiary numbers", citation: "45 CFR 164.514(e)(2)(viii)" },
    Identifier { name: "account numbers", citation: "45 CFR 164.514(e)(2)(ix)" },
    Identifier { name: "certificate/license numbers", citation: "45 CFR 164.514(e)(2)(x)" },
    Identifier {
        name: "vehicle identifiers and serial numbers, including license plate numbers",
        citation: "45 CFR 164.514(e)(2)(xi)",
    },
    Identifier { name: "device identifiers and serial numbers", citation: "45 CFR 164.514(e)(2)(xii)" },
    Identifier { name: "web universal resource locators (URLs)", citation: "45 CFR 164.514(e)(2)(xiii)" },
    Identifier { name: "internet protocol (IP) address numbers", citation: "45 CFR 164.514(e)(2)(xiv)" },
    Identifier {
        name: "biometric identifiers, including finger and voice prints",
        citation: "45 CFR 164.514(e)(2)(xv)",
    },
    Identifier {
        name: "full-face photographic images and any comparable images",
        citation: "45 CFR 164.514(e)(2)(xvi)",
    },
];

const NAMES: usize = 0;
const POSTAL: usize = 1;
const PHONE: usize = 2;
const FAX: usize = 3;
const EMAIL: usize = 4;
const SSN: usize = 5;
const MRN: usize = 6;
const PLAN: usize = 7;
const ACCOUNT: usize = 8;
const LICENSE: usize = 9;
const VEHICLE: usize = 10;
const DEVICE: usize = 11;
const URL: usize = 12;
const IP: usize = 13;
const BIOMETRIC: usize = 14;
const PHOTO: usize = 15;

/// A run of words naming an identifier. `unless_next`: words that, right after the match,
/// mean something else (`phone call counts` is about calls, not numbers).
struct Pattern {
    words: &'static str,
    id: usize,
    unless_next: &'static [&'static str],
}

const fn p(words: &'static str, id: usize) -> Pattern {
    Pattern { words, id, unless_next: &[] }
}

const CONTACT_EVENTS: &[&str] =
    &["call", "visit", "encounter", "consult", "consultation", "appointment", "triage", "session"];

static PATTERNS: &[Pattern] = &[
    // (i) names: single words here; `name` itself is matched by context in `names_hit`.
    p("surname", NAMES),
    p("forename", NAMES),
    p("firstname", NAMES),
    p("lastname", NAMES),
    p("fullname", NAMES),
    p("initials", NAMES),
    p("nickname", NAMES),
    // (ii) postal address other than town/city, State, ZIP
    p("address", POSTAL),
    p("street", POSTAL),
    p("house number", POSTAL),
    p("apartment number", POSTAL),
    p("apt number", POSTAL),
    p("po box", POSTAL),
    p("p o box", POSTAL),
    p("post office box", POSTAL),
    // (iii) telephone numbers
    Pattern { words: "phone", id: PHONE, unless_next: CONTACT_EVENTS },
    Pattern { words: "telephone", id: PHONE, unless_next: CONTACT_EVENTS },
    p("phone number", PHONE),
    p("telephone number", PHONE),
    p("cellphone", PHONE),
    p("cell phone", PHONE),
    p("cell number", PHONE),
    p("mobile phone", PHONE),
    p("mobile number", PHONE),
    p("contact number", PHONE),
    p("pager", PHONE),
    // (iv) fax numbers
    p("fax", FAX),
    p("facsimile", FAX),
    // (v) email addresses
    p("email", EMAIL),
    p("e mail", EMAIL),
    p("email address", EMAIL),
    p("e mail address", EMAIL),
    p("electronic mail", EMAIL),
    // (vi) social security numbers
    p("ssn", SSN),
    p("social security", SSN),
    p("social security number", SSN),
    p("ss number", SSN),
    // (vii) medical record numbers
    p("mrn", MRN),
    p("medical record number", MRN),
    p("medical record no", MRN),
    p("medical record id", MRN),
    p("medical record identifier", MRN),
    p("health record number", MRN),
    p("chart number", MRN),
    p("chart id", MRN),
    p("patient id", MRN),
    p("patient identifier", MRN),
    p("patient number", MRN),
    p("record number", MRN),
    p("emr id", MRN),
    p("ehr id", MRN),
    // (viii) health plan beneficiary numbers
    p("health plan beneficiary number", PLAN),
    p("beneficiary number", PLAN),
    p("beneficiary id", PLAN),
    p("beneficiary identifier", PLAN),
    p("member id", PLAN),
    p("member number", PLAN),
    p("member identifier", PLAN),
    p("subscriber id", PLAN),
    p("subscriber number", PLAN),
    p("policy number", PLAN),
    p("insurance id", PLAN),
    p("insurance number", PLAN),
    p("medicaid id", PLAN),
    p("medicaid number", PLAN),
    p("medicare id", PLAN),
    p("medicare number", PLAN),
    p("mbi", PLAN),
    p("hicn", PLAN),
    // (ix) account numbers
    p("account number", ACCOUNT),
    p("account no", ACCOUNT),
    p("account id", ACCOUNT),
    p("account identifier", ACCOUNT),
    p("acct number", ACCOUNT),
    p("acct no", ACCOUNT),
    p("bank account", ACCOUNT),
    p("billing account", ACCOUNT),
    p("credit card", ACCOUNT),
    p("debit card", ACCOUNT),
    p("card number", ACCOUNT),
    p("iban", ACCOUNT),
    // (x) certificate/license numbers
    p("license number", LICENSE),
    p("licence number", LICENSE),
    p("license id", LICENSE),
    p("drivers license", LICENSE),
    p("driver license", LICENSE),
    p("drivers licence", LICENSE),
    p("driver licence", LICENSE),
    p("certificate number", LICENSE),
    p("certificate id", LICENSE),
    p("passport", LICENSE),
    // (xi) vehicle identifiers and serial numbers, license plates
    p("vin", VEHICLE),
    p("vehicle identification number", VEHICLE),
    p("vehicle identifier", VEHICLE),
    p("vehicle id", VEHICLE),
    p("vehicle serial number", VEHICLE),
    p("vehicle registration", VEHICLE),
    p("license plate", VEHICLE),
    p("licence plate", VEHICLE),
    p("plate number", VEHICLE),
    p("number plate", VEHICLE),
    p("registration plate", VEHICLE),
    // (xii) device identifiers and serial numbers
    p("device identifier", DEVICE),
    p("device id", DEVICE),
    p("device serial number", DEVICE),
    p("serial number", DEVICE),
    p("serial no", DEVICE),
    p("udi", DEVICE),
    p("unique device identifier", DEVICE),
    p("imei", DEVICE),
    p("mac address", DEVICE),
    // (xiii) URLs
    p("url", URL),
    p("uri", URL),
    p("web address", URL),
    p("website", URL),
    p("web site", URL),
    p("web page", URL),
    p("webpage", URL),
    p("homepage", URL),
    p("home page", URL),
    // (xiv) IP addresses
    p("ip address", IP),
    p("ip addr", IP),
    p("ip number", IP),
    p("ipv4", IP),
    p("ipv6", IP),
    p("internet protocol", IP),
    // (xv) biometric identifiers
    p("biometric", BIOMETRIC),
    p("fingerprint", BIOMETRIC),
    p("finger print", BIOMETRIC),
    p("thumbprint", BIOMETRIC),
    p("thumb print", BIOMETRIC),
    p("voiceprint", BIOMETRIC),
    p("voice print", BIOMETRIC),
    p("palmprint", BIOMETRIC),
    p("palm print", BIOMETRIC),
    p("retina", BIOMETRIC),
    p("retina scan", BIOMETRIC),
    p("retinal scan", BIOMETRIC),
    p("iris scan", BIOMETRIC),
    p("iris image", BIOMETRIC),
    p("hand geometry", BIOMETRIC),
    p("facial geometry", BIOMETRIC),
    p("face geometry", BIOMETRIC),
    p("facial recognition", BIOMETRIC),
    // (xvi) full-face photographs and comparable images
    p("photo", PHOTO),
    p("photograph", PHOTO),
    p("face image", PHOTO),
    p("face photo", PHOTO),
    p("facial image", PHOTO),
    p("facial photo", PHOTO),
    p("facial photograph", PHOTO),
    p("full face", PHOTO),
    p("headshot", PHOTO),
    p("head shot", PHOTO),
    p("mugshot", PHOTO),
    p("selfie", PHOTO),
    p("portrait", PHOTO),
];

/// Words that, before `name` (or after `name of`), make it a person's name.
#[rustfmt::skip]
const PERSON_WORDS: &[&str] = &[
    "patient", "full", "first", "last", "given", "family", "middle", "maiden", "legal", "preferred",
    "birth", "member", "subscriber", "guarantor", "relative", "spouse", "parent", "mother", "father",
    "child", "employer", "household", "contact", "person", "individual", "beneficiary", "insured",
    "enrollee", "participant", "subject", "client", "resident", "caregiver", "guardian", "kin",
];

/// Returns the identifier `element` names, if any.
pub fn screen(element: &str) -> Option<&'static Identifier> {
    let words = words(element);
    let mut best: Option<(usize, usize)> = None; // (pattern length in words, identifier)
    if names_hit(&words) {
        best = Some((1, NAMES));
    }
    for pat in PATTERNS {
        let pw: Vec<&str> = pat.words.split(' ').collect();
        if pw.len() > words.len() || best.is_some_and(|(len, _)| len >= pw.len()) {
            continue;
        }
        let hit = (0..=words.len() - pw.len()).any(|start| {
            pw.iter().enumerate().all(|(k, w)| word_eq(&words[start + k], w))
                && words.get(start + pw.len()).is_none_or(|next| !pat.unless_next.iter().any(|u| word_eq(next, u)))
        });
        if hit {
            best = Some((pw.len(), pat.id));
        }
    }
    best.map(|(_, id)| &IDENTIFIERS[id])
}

/// Lowercase words: apostrophes dropped, any other non-alphanumeric character separates.
fn words(s: &str) -> Vec<String> {
    let cleaned: String = s
        .chars()
        .filter(|c| !matches!(c, '\'' | '’' | '‘'))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    cleaned.split_whitespace().map(str::to_owned).collect()
}

/// `word` is `pattern` or its plural.
fn word_eq(word: &str, pattern: &str) -> bool {
    word.strip_prefix(pattern).is_some_and(|rest| rest.is_empty() || rest == "s" || rest == "es")
}

fn is_person_word(w: &str) -> bool {
    PERSON_WORDS.iter().any(|p| word_eq(w, p))
}

/// `name` alone, `patient name`, `last names`, `name of patient`, `names of relatives`.
fn names_hit(words: &[String]) -> bool {
    if words.len() == 1 && word_eq(&words[0], "name") {
        return true;
    }
    words.iter().enumerate().any(|(i, w)| {
        word_eq(w, "name")
            && ((i > 0 && is_person_word(&words[i - 1]))
                || (words.get(i + 1).is_some_and(|of| of == "of")
                    && words.get(i + 2).is_some_and(|n| is_person_word(n))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(element: &str) -> Option<&'static str> {
        screen(element).map(|i| i.citation)
    }

    #[test]
    fn flags_each_identifier() {
        let hits: &[(&str, &str)] = &[
            ("patient name", "(e)(2)(i)"),
            ("Full Name", "(e)(2)(i)"),
            ("patient's last name", "(e)(2)(i)"),
            ("names of relatives", "(e)(2)(i)"),
            ("name", "(e)(2)(i)"),
            ("employer name", "(e)(2)(i)"),
            ("surname", "(e)(2)(i)"),
            ("street address", "(e)(2)(ii)"),
            ("home address", "(e)(2)(ii)"),
            ("mailing addresses", "(e)(2)(ii)"),
            ("P.O. Box", "(e)(2)(ii)"),
            ("phone", "(e)(2)(iii)"),
            ("home phone number", "(e)(2)(iii)"),
            ("telephone numbers", "(e)(2)(iii)"),
            ("cell phone", "(e)(2)(iii)"),
            ("fax number", "(e)(2)(iv)"),
            ("patient email", "(e)(2)(v)"),
            ("E-mail address", "(e)(2)(v)"),
            ("emails", "(e)(2)(v)"),
            ("SSN", "(e)(2)(vi)"),
            ("last 4 of SSN", "(e)(2)(vi)"),
            ("Social Security number", "(e)(2)(vi)"),
            ("MRN", "(e)(2)(vii)"),
            ("medical record numbers", "(e)(2)(vii)"),
            ("patient ID", "(e)(2)(vii)"),
            ("member ID", "(e)(2)(viii)"),
            ("health plan beneficiary number", "(e)(2)(viii)"),
            ("Medicare number", "(e)(2)(viii)"),
            ("account number", "(e)(2)(ix)"),
            ("patient account numbers", "(e)(2)(ix)"),
            ("credit card", "(e)(2)(ix)"),
            ("driver's license", "(e)(2)(x)"),
            ("Driver’s license number", "(e)(2)(x)"),
            ("certificate number", "(e)(2)(x)"),
            ("passport", "(e)(2)(x)"),
            ("VIN", "(e)(2)(xi)"),
            ("license plate", "(e)(2)(xi)"),
            ("vehicle serial number", "(e)(2)(xi)"),
            ("serial number", "(e)(2)(xii)"),
            ("device identifiers", "(e)(2)(xii)"),
            ("pacemaker serial numbers", "(e)(2)(xii)"),
            ("MAC address", "(e)(2)(xii)"),
            ("URL", "(e)(2)(xiii)"),
            ("web address", "(e)(2)(xiii)"),
            ("personal website", "(e)(2)(xiii)"),
            ("IP address", "(e)(2)(xiv)"),
            ("IP addresses", "(e)(2)(xiv)"),
            ("fingerprint", "(e)(2)(xv)"),
            ("finger prints", "(e)(2)(xv)"),
            ("voiceprint", "(e)(2)(xv)"),
            ("retina", "(e)(2)(xv)"),
            ("retinal scans", "(e)(2)(xv)"),
            ("biometric identifiers", "(e)(2)(xv)"),
            ("photo", "(e)(2)(xvi)"),
            ("Photographs", "(e)(2)(xvi)"),
            ("full-face image", "(e)(2)(xvi)"),
            ("face image", "(e)(2)(xvi)"),
        ];
        for (element, suffix) in hits {
            let got = id(element);
            assert_eq!(got, Some(format!("45 CFR 164.514{suffix}").as_str()), "{element}");
        }
    }

    #[test]
    fn passes_limited_data_set_elements() {
        for element in [
            "dates of service",
            "5-digit ZIP code",
            "age at visit",
            "diagnosis codes",
            "appointment status",
            "city",
            "state",
            "zip code",
            "ZIP+4",
            "date of birth",
            "admission date",
            "discharge date",
            "date of death",
            "town",
            "county",
            "sex",
            "race and ethnicity",
            "drug name",
            "facility name",
            "procedure codes",
            "number of phone calls",
            "telephone encounters",
            "lab results",
            "white blood cell count",
            "inpatient (IP) admissions",
            "diabetic retinopathy grade",
            "insurance type",
            "payer name",
            "",
        ] {
            assert_eq!(screen(element), None, "{element}");
        }
    }

    #[test]
    fn longest_match_wins() {
        assert_eq!(screen("email address").map(|i| i.name), Some("email addresses"));
        assert_eq!(screen("ip address").map(|i| i.name), Some("internet protocol (IP) address numbers"));
        assert_eq!(screen("license plate number").map(|i| i.citation), Some("45 CFR 164.514(e)(2)(xi)"));
    }

    #[test]
    fn table_is_in_regulation_order() {
        let romans =
            ["i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii", "xiii", "xiv", "xv", "xvi"];
        for (ident, roman) in IDENTIFIERS.iter().zip(romans) {
            assert_eq!(ident.citation, format!("45 CFR 164.514(e)(2)({roman})"));
        }
    }
}
